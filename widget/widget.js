/* The widget's own script, inside its iframe. The page works without it (the form posts and
   the server answers with a page); with it, signing happens in place:
   - the form is sent with fetch; errors appear beside their fields and are announced; the
     signer's input is never cleared by a failure;
   - a stale or too-fresh form token is replaced or waited for without bothering the signer
     (an expired one is answered with its renewal, sent again at once);
   - the count follows other signers by conditional polling of a tiny resource (a 304 while
     nothing changed), only while the widget is visible;
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
  var count = data.count;
  var goal = data.goal;
  var goalText = document.querySelector("#pw-count .pw-goal");

  // Numbers as the server writes them (CLDR, through Babel): Intl in the language's default
  // numbering system when this browser's CLDR data agrees with the server's samples, else the
  // server's own digits and group separator (Debian's Chromium has no Kazakh data, for one).
  var num = data.numbers;
  var formatNumber = new Intl.NumberFormat(data.lang, { numberingSystem: num.system }).format;
  if (num.samples.some(function (s) { return formatNumber(s[0]) !== s[1]; })) {
    formatNumber = function (value) {
      return String(value).replace(/\B(?=(\d{3})+$)/g, ",").replace(/[\d,]/g, function (c) {
        return c === "," ? num.group : num.digits[c];
      });
    };
  }

  function format(text, values) {
    return text.replace(/\{(\w+)\}/g, function (m, k) { return k in values ? values[k] : m; });
  }

  // The count never goes back on an open page (a poll may meet an older cache); the goal is
  // the server's (a raised goal, or auto_goal's next step).
  function showCount(n, g) {
    var newCount = typeof n === "number" && n > count;
    var newGoal = typeof g === "number" && g > 0 && g !== goal;
    if (!newCount && !newGoal) return;
    if (newCount) count = n;
    if (newGoal) {
      goal = g;
      data.goal_text = format(t.goal, { goal: formatNumber(goal) });
      goalText.textContent = data.goal_text;
    }
    var forms = t.signed_count;
    var text = format(forms[plural.select(count)] || forms.other, { count: formatNumber(count) });
    countText.textContent = text;
    track.setAttribute("aria-valuenow", String(count));
    track.setAttribute("aria-valuemax", String(Math.max(count, goal)));
    track.setAttribute("aria-valuetext", text + ". " + data.goal_text);
    fill.style.width = Math.min(100, (100 * count) / goal) + "%";
  }

  // A petition closed while the page is open: the form gives way to the closed notice (a
  // thank-you or check-your-email step already shown stays).
  function showClosed() {
    var form = document.getElementById("pw-form");
    if (!form || form.hidden || document.querySelector(".pw-closed")) return;
    var notice = document.createElement("p");
    notice.className = "pw-closed";
    notice.setAttribute("role", "status");
    notice.textContent = t.closed;
    form.parentNode.insertBefore(notice, form);
    form.hidden = true;
  }

  // --- Height for the partner's page ----------------------------------------------------------
  // Sent only to the origin the loader named, in the "petition-widget" envelope with its frame id.
  if (data.parent_origin && window.parent !== window && window.ResizeObserver) {
    var lastHeight = 0;
    var sendHeight = function () {
      var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
      if (height === lastHeight) return;
      lastHeight = height;
      window.parent.postMessage(
        { "petition-widget": { id: document.getElementById("pw-frame").value, height: height, title: document.title } },
        data.parent_origin
      );
    };
    new ResizeObserver(sendHeight).observe(document.documentElement);
    // Browsers pause rendering (and so ResizeObserver) in cross-origin frames out of view;
    // measuring now gives a lazy frame further down the page its height before it is seen.
    sendHeight();
    window.addEventListener("load", sendHeight);
  }

  if (!data.count_url) return; // the page of a petition that is not there: its height only

  // --- Live count -----------------------------------------------------------------------------
  // One small request every poll_seconds (± 20 %, so widgets opened together drift apart), none
  // while the page is hidden; after a failure the wait doubles, up to ten minutes.
  var etag = data.count_etag; // the count this page was rendered with
  var delay = data.poll_seconds * 1000;
  var timer = 0;
  var lastPoll = Date.now();

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms * (0.8 + Math.random() * 0.4));
  }

  function poll() {
    if (document.hidden) return;
    lastPoll = Date.now();
    fetch(data.count_url, { headers: { "If-None-Match": etag }, cache: "no-store" }).then(function (r) {
      if (r.status === 304) return null;
      if (!r.ok) throw new Error(String(r.status));
      etag = r.headers.get("ETag") || etag;
      return r.json();
    }).then(function (c) {
      if (c) {
        showCount(c.signatures, c.goal);
        if (c.status === "closed") showClosed();
      }
      delay = data.poll_seconds * 1000;
    }, function () {
      delay = Math.min(delay * 2, 600000);
    }).then(function () { schedule(delay); });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) return clearTimeout(timer);
    if (Date.now() - lastPoll > delay) poll();
    else schedule(delay);
  });
  schedule(delay);

  if (!form) return;

  // --- Signing --------------------------------------------------------------------------------
  var alertBox = document.getElementById("pw-alert");
  var button = form.querySelector(".pw-submit");
  var busy = false;

  function setAlert(text) {
    alertBox.textContent = "";
    if (text) {
      var p = document.createElement("p");
      p.textContent = text;
      alertBox.appendChild(p);
    }
  }

  // Each field's message goes into the span "pw-NAME-err" beside it, which the field's
  // aria-describedby names; returns the first invalid field.
  function setErrors(errors) {
    var first = null;
    Array.prototype.forEach.call(form.querySelectorAll(".pw-err"), function (span) {
      var name = span.id.slice(3, -4);
      var field = form.elements[name];
      var message = errors[name] || "";
      span.textContent = message;
      if (!field) return;
      if (message) {
        field.setAttribute("aria-invalid", "true");
        first = first || field;
      } else {
        field.removeAttribute("aria-invalid");
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
    if (solution) body.challenge_solution = solution;
    return body;
  }

  // --- Proof of work (docs/challenge.md) --------------------------------------------------------
  // While the server asks for one, a token comes with a puzzle, solved by a Web Worker
  // (challenge.js, fetched only then, the name server/web/widget.py's SOLVER keeps)
  // while the signer types: under a second on a slow phone.
  var solution = "";
  var ready; // the fresh token (and its solution) asked for when the signer began

  // A token answer (from /token, or a refusal that renews its token) put into the form, and
  // its puzzle solved. The worker posts {number}, -1 when none; an error event has no data.
  function useToken(j) {
    form.elements.token.value = j.token;
    solution = "";
    return Promise.resolve(j.challenge && new Promise(function (resolve, reject) {
      var worker = new Worker("/widget/assets/challenge.js");
      worker.onmessage = worker.onerror = function (e) {
        worker.terminate();
        if (e.data && e.data.number >= 0) resolve(solution = String(e.data.number)); else reject(e);
      };
      worker.postMessage(j.challenge);
    }));
  }

  // A token past the limit on tokens (429) is waited for as the server says, a few times.
  function freshToken(attempt) {
    attempt = attempt || 0;
    return fetch(data.token_url, { cache: "no-store" }).then(function (r) {
      var retryAfter = Math.min(60, parseInt(r.headers.get("Retry-After") || "0", 10) || 0);
      if (r.status === 429 && attempt < 3) return wait(retryAfter || 10).then(function () { return freshToken(attempt + 1); });
      if (!r.ok) throw new Error("token");
      return r.json().then(useToken);
    });
  }

  if (data.challenge && !data.preview) {
    form.addEventListener("focusin", function () { ready = ready || freshToken().catch(function () {}); });
  }

  function wait(seconds) {
    return new Promise(function (resolve) { setTimeout(resolve, seconds * 1000); });
  }

  function setBusy(on) {
    busy = on;
    button.setAttribute("aria-disabled", on ? "true" : "false");
    button.textContent = on ? t.sending : t.sign_button;
  }

  function signed(n, withdrawUrl) {
    showCount(n);
    var withdraw = thanks.querySelector(".pw-withdraw");
    if (withdrawUrl) {
      withdraw.querySelector("a").href = withdrawUrl;
      withdraw.hidden = false;
    }
    form.hidden = true;
    thanks.hidden = false;
    thanks.querySelector("h2").focus(); // moves the reader to the thank-you, which is read out
  }

  // The petition counts a signature once its signer confirms it from a mail: say where to look,
  // with the address as typed (as text: it goes nowhere else).
  function checkEmail(address) {
    var check = document.getElementById("pw-check");
    check.querySelector(".pw-check-text").textContent = format(t.check_text, { email: address });
    form.hidden = true;
    check.hidden = false;
    check.querySelector("h2").focus();
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
        if (r.status === 201) return signed(j.signatures, j.withdraw_url);
        if (r.status === 202) return checkEmail(form.elements.email.value.trim());
        if (r.status === 422) {
          setAlert(j.message || t.form_errors);
          var first = setErrors(j.errors || {});
          if (first) first.focus();
          return;
        }
        // An expired form, or one without its challenge's solution, comes back with its renewal
        // (and its challenge), which remembers when this form was first shown: sent again at
        // once, with no "too fresh" wait for someone who has waited.
        if ((j.error === "expired_token" || j.error === "challenge_required") && j.token && attempt < 2) {
          return useToken(j).then(function () { return send(attempt + 1); });
        }
        var renewable = ["expired_token", "invalid_token", "token_used"].indexOf(j.error) >= 0;
        if (renewable && attempt < 2) return freshToken().then(function () { return send(attempt + 1); });
        if (j.error === "token_too_fresh" && attempt < 2) return wait(retryAfter || 2).then(function () { return send(attempt + 1); });
        if ((r.status === 429 || r.status === 503) && retryAfter && attempt < 3) {
          setAlert(format(t.retrying_in, { seconds: formatNumber(retryAfter) }));
          return wait(retryAfter).then(function () { return send(attempt + 1); });
        }
        setAlert(j.message || t.error_network);
      });
    });
  }

  // A document served past the limit on tokens has none: it says so, and one is fetched when
  // the server allows it, so the signer does not have to reload.
  var waitingForToken = null;
  if (form && !form.elements.token.value && data.token_retry && !data.preview) {
    waitingForToken = wait(data.token_retry).then(function () { return freshToken(0); }).then(function () {
      setAlert("");
    }).catch(function () { waitingForToken = null; });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy || data.preview) return;  // the dashboard's preview never signs
    var first = setErrors(localCheck());
    if (first) {
      setAlert(t.form_errors);
      first.focus();
      return;
    }
    setAlert("");
    setBusy(true);
    var pending = ready || waitingForToken || (form.elements.token.value ? null : freshToken(0));
    if (!form.elements.token.value) setAlert(t.token_wait);
    Promise.resolve(pending).then(function () { setAlert(""); return send(0); })
      .catch(function () { setAlert(t.error_network); }).then(function () { setBusy(false); });
  });

  // --- Copy link ------------------------------------------------------------------------------
  // The clipboard API needs the host's permission (the loader asks with allow="clipboard-write");
  // without it, the link is selected and copied the old way, or left selected for the signer.
  var copy = thanks.querySelector(".pw-copy");
  var copied = thanks.querySelector(".pw-copied");
  var link = document.getElementById("pw-share-url");
  copy.parentNode.hidden = false; // a button that needs this script: hidden without it
  shareButtons();
  copy.addEventListener("click", function () {
    function manually() {
      link.focus();
      link.select();
      var done = false;
      try { done = document.execCommand("copy"); } catch (e) { done = false; }
      copied.textContent = done ? t.share_copied : t.share_copy_manual;
    }
    if (!navigator.clipboard) return manually();
    navigator.clipboard.writeText(link.value).then(function () {
      copied.textContent = t.share_copied;
    }, manually);
  });

  // The phone's share sheet (the Web Share API: the only way to Signal, which has no share
  // link), and Mastodon, which asks for the signer's own server: the link is built here, and
  // nothing is requested from that server until the signer follows it.
  function shareButtons() {
    var native = thanks.querySelector(".pw-native");
    if (navigator.share) {
      native.parentNode.hidden = false;
      native.addEventListener("click", function () {
        navigator.share({ title: document.title, url: link.value }).catch(function () {});
      });
    }
    var masto = thanks.querySelector(".pw-masto");
    var ask = document.getElementById("pw-masto");
    var host = document.getElementById("pw-masto-host");
    var go = ask.querySelector(".pw-masto-go");
    masto.parentNode.hidden = false;
    masto.addEventListener("click", function () {
      ask.hidden = !ask.hidden;
      masto.setAttribute("aria-expanded", String(!ask.hidden));
      if (!ask.hidden) host.focus();
    });
    host.addEventListener("input", function () {
      var name = host.value.trim().replace(/^https?:\/\//, "").replace(/\/.*$/, "").toLowerCase();
      var ok = /^[a-z0-9-]+(\.[a-z0-9-]+)+$/.test(name);
      go.setAttribute("aria-disabled", ok ? "false" : "true");
      if (ok) go.href = "https://" + name + "/share?text=" + encodeURIComponent(host.dataset.text);
      else go.removeAttribute("href");
    });
  }
})();
