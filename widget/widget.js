/* The widget's own script, inside its iframe. The page works without it (the form posts and
   the server answers with a page); with it, signing happens in place:
   - the form is sent with fetch; errors appear beside their fields and are announced; the
     signer's input is never cleared by a failure;
   - a stale or too-fresh form token is replaced or waited for without bothering the signer;
   - the count follows other signers by conditional polling (cheap 304s), only while visible;
   - the frame tells the partner's page its height, so it never shows an inner scrollbar. */
(function () {
  "use strict";

  var data = JSON.parse(document.getElementById("pw-data").textContent);
  var form = document.getElementById("pw-form");
  var thanks = document.getElementById("pw-thanks");
  var countText = document.querySelector("#pw-count strong");
  var track = document.querySelector(".pw-track");
  var fill = document.querySelector(".pw-fill");
  var t = data.messages;
  var plural = new Intl.PluralRules(data.lang);
  var numbers = new Intl.NumberFormat(data.lang);
  var count = data.count;
  var etag = null;

  function format(text, values) {
    return text.replace(/\{(\w+)\}/g, function (m, k) { return k in values ? values[k] : m; });
  }

  function showCount(n) {
    count = Math.max(count, n);
    var forms = t.signed_count;
    var text = format(forms[plural.select(count)] || forms.other, { count: numbers.format(count) });
    countText.textContent = text;
    track.setAttribute("aria-valuenow", String(count));
    track.setAttribute("aria-valuetext", text + ". " + data.goal_text);
    fill.style.width = Math.min(100, (100 * count) / data.goal) + "%";
  }

  // --- Height for the partner's page ----------------------------------------------------------
  if (data.parent_origin && window.parent !== window) {
    var lastHeight = 0;
    var sendHeight = function () {
      var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
      if (height !== lastHeight) {
        lastHeight = height;
        window.parent.postMessage({ "petition-widget": { height: height, id: data.frame } }, data.parent_origin);
      }
    };
    new ResizeObserver(sendHeight).observe(document.documentElement);
    sendHeight();
  }

  // --- Live count -----------------------------------------------------------------------------
  function poll() {
    if (document.hidden) return;
    var headers = etag ? { "If-None-Match": etag } : {};
    fetch(data.petition_url, { headers: headers, cache: "no-store" }).then(function (r) {
      if (r.status !== 200) return null;
      etag = r.headers.get("ETag");
      return r.json();
    }).then(function (p) {
      if (p && typeof p.signatures === "number") showCount(p.signatures);
    }).catch(function () {});
  }
  setInterval(poll, data.poll_seconds * 1000);
  document.addEventListener("visibilitychange", poll);

  if (!form) return;

  // --- Signing --------------------------------------------------------------------------------
  var alertBox = document.getElementById("pw-alert");
  var button = form.querySelector(".pw-submit");
  var busy = false;
  form.noValidate = true; // our messages, in the widget's language, replace the browser's

  function setAlert(text) {
    alertBox.textContent = "";
    if (text) {
      var p = document.createElement("p");
      p.textContent = text;
      alertBox.appendChild(p);
    }
  }

  function setErrors(errors) {
    var first = null;
    Array.prototype.forEach.call(form.querySelectorAll(".pw-err"), function (span) {
      var field = form.elements[span.id.slice(3, -4)];
      var message = errors[span.id.slice(3, -4)] || "";
      span.textContent = message;
      if (field) {
        if (message) {
          field.setAttribute("aria-invalid", "true");
          first = first || field;
        } else {
          field.removeAttribute("aria-invalid");
        }
      }
    });
    return first;
  }

  function localCheck() {
    var errors = {};
    ["name", "email", "country"].forEach(function (name) {
      var field = form.elements[name];
      if (field && field.required && !field.value.trim()) errors[name] = t.error_required;
    });
    var email = form.elements.email.value.trim();
    if (email && !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) errors.email = t.error_email_invalid;
    return errors;
  }

  function fields() {
    var body = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      body[el.name] = el.type === "checkbox" ? el.checked : el.value;
    });
    return body;
  }

  function freshToken() {
    return fetch(data.token_url, { cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error("token");
      return r.json();
    }).then(function (j) { form.elements.token.value = j.token; });
  }

  function wait(seconds) {
    return new Promise(function (resolve) { setTimeout(resolve, seconds * 1000); });
  }

  function setBusy(on) {
    busy = on;
    button.setAttribute("aria-disabled", on ? "true" : "false");
    button.textContent = on ? t.sending : t.sign_button;
  }

  function signed(n) {
    showCount(n);
    form.hidden = true;
    thanks.hidden = false;
    thanks.querySelector("h2").focus();
  }

  function send(attempt) {
    return fetch(form.action, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(fields()),
      cache: "no-store"
    }).then(function (r) {
      var retryAfter = Math.min(60, parseInt(r.headers.get("Retry-After") || "0", 10) || 0);
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (r.status === 201) return signed(j.signatures);
        if (r.status === 422) {
          setAlert(j.message || t.form_errors);
          var first = setErrors(j.errors || {});
          if (first) first.focus();
          return;
        }
        var renewable = ["expired_token", "invalid_token", "token_used"].indexOf(j.error) >= 0;
        if (renewable && attempt < 2) return freshToken().then(function () { return send(attempt + 1); });
        if (j.error === "token_too_fresh" && attempt < 2) return wait(retryAfter || 2).then(function () { return send(attempt + 1); });
        if ((r.status === 429 || r.status === 503) && retryAfter && attempt < 3) {
          setAlert(format(t.retrying_in, { seconds: retryAfter }));
          return wait(retryAfter).then(function () { return send(attempt + 1); });
        }
        setAlert(j.message || t.error_network);
      });
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    var errors = localCheck();
    var first = setErrors(errors);
    if (first) {
      setAlert(t.form_errors);
      first.focus();
      return;
    }
    setAlert("");
    setBusy(true);
    send(0).catch(function () { setAlert(t.error_network); }).then(function () { setBusy(false); });
  });

  var copy = document.querySelector(".pw-copy");
  if (copy && navigator.clipboard) {
    copy.hidden = false;
    copy.addEventListener("click", function () {
      navigator.clipboard.writeText(copy.getAttribute("data-url")).then(function () {
        document.querySelector(".pw-copied").textContent = t.share_copied;
      });
    });
  }
})();
