// The dashboard's only script. Everything works without it; it adds:
// - sign-in from a link `/admin/login#key=...` (the demo prints one): the key is read from the
//   fragment, which browsers never send to a server, removed from the address bar at once,
//   and sent to be shown by its role and scope: only a click on that page signs in (a link
//   made by someone else must not sign a visitor into their dashboard by itself);
// - the snippet generator's live update of the snippet and the preview as options change (the
//   preview's address always says preview=1: a preview never signs);
// - copy buttons and a confirmation before closing a petition.
(function () {
  "use strict";

  function loginFromFragment() {
    var form = document.getElementById("login-form");
    var match = /^#key=([A-Za-z0-9_]+)$/.exec(window.location.hash);
    if (!form || !match) return;
    history.replaceState(null, "", window.location.pathname + window.location.search);
    form.elements.key.value = match[1];
    var step = document.createElement("input");
    step.type = "hidden";
    step.name = "step";
    step.value = "link";
    form.appendChild(step);
    form.submit();
  }

  var HEX = /^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$/;
  var CODE = /^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/;

  function escapeHtml(text) {
    return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&quot;");
  }

  // The same text as server/snippet.py builds.
  function snippet(base, slug, partner, lang, accent) {
    var attrs = [["src", base + "/embed.js"], ["data-petition", slug]];
    var query = [];
    if (partner) { attrs.push(["data-partner", partner]); query.push("partner=" + encodeURIComponent(partner)); }
    if (lang) { attrs.push(["data-lang", lang]); query.push("lang=" + encodeURIComponent(lang)); }
    if (accent) { attrs.push(["data-accent", accent]); query.push("accent=" + encodeURIComponent(accent)); }
    var tag = attrs.map(function (a) { return a[0] + '="' + escapeHtml(a[1]) + '"'; }).join(" ");
    var path = "/widget/" + encodeURIComponent(slug) + (query.length ? "?" + query.join("&") : "");
    return {
      path: path,
      text: "<script async " + tag + "></" + "script>\n" +
        '<noscript><iframe src="' + escapeHtml(base + path) + '" title="Petition" loading="lazy" ' +
        'style="width:100%;height:1200px;border:0"></iframe></noscript>'
    };
  }

  function generator() {
    var form = document.getElementById("generator");
    if (!form) return;
    var text = document.getElementById("snippet-text");
    var frame = document.getElementById("preview");
    var timer = null;
    function update() {
      var partner = form.elements.partner ? form.elements.partner.value : "";
      var lang = form.elements.lang.value;
      var accent = form.elements.accent.value.trim();
      partner = CODE.test(partner) ? partner : "";
      accent = HEX.test(accent) ? accent : "";
      var built = snippet(form.dataset.base, form.dataset.slug, partner, lang, accent);
      text.value = built.text;
      clearTimeout(timer);
      timer = setTimeout(function () {
        var preview = built.path + (built.path.indexOf("?") < 0 ? "?" : "&") + "preview=1";
        if (frame && frame.getAttribute("src") !== preview) frame.setAttribute("src", preview);
      }, 400);
    }
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    form.addEventListener("submit", function (event) { event.preventDefault(); update(); });
  }

  function copyButtons() {
    var button = document.getElementById("copy-snippet");
    var status = document.getElementById("copy-status");
    if (!button || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      // The words come with the button, in the page's language.
      navigator.clipboard.writeText(document.getElementById("snippet-text").value).then(
        function () { status.textContent = button.dataset.copied; },
        function () { status.textContent = button.dataset.failed; }
      );
    });
  }

  function confirmations() {
    document.querySelectorAll("[data-confirm]").forEach(function (button) {
      button.form.addEventListener("submit", function (event) {
        if (!window.confirm(button.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function start() {
    loginFromFragment();
    generator();
    copyButtons();
    confirmations();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
