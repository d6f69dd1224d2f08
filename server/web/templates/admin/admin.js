// The dashboard's only script. Everything works without it; it adds:
// - sign-in from a link `/admin/login#key=...` (the demo prints one): the key is read from the
//   fragment, which browsers never send to a server, removed from the address bar at once,
//   and sent to be shown by its role and scope: only a click on that page signs in (a link
//   made by someone else must not sign a visitor into their dashboard by itself);
// - the snippet generator's live update of the snippet and the preview as options change (the
//   preview's address always says preview=1: a preview never signs), and the preview frame
//   sized to the widget's own height (the widget reports it);
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

  // The same text as server/domain/snippet.py builds (a browser test compares them).
  function spaceCss(space) {
    var narrow = space[0], wide = space[1];
    var slope = (narrow - wide) / (800 - 375);
    var top = Math.ceil(narrow + slope * (375 - 280));
    return "min-height:" + narrow + "px;min-height:clamp(" + wide + "px,calc(" + narrow +
      "px - (100cqw - 375px) * " + slope.toFixed(4) + ")," + top + "px)";
  }

  function snippet(base, slug, options, space, height) {
    var attrs = [["src", base + "/embed.js"], ["data-petition", slug]];
    var query = [];
    options.forEach(function (o) {
      if (!o[1]) return;
      attrs.push(["data-" + o[0], o[1]]);
      query.push(o[0] + "=" + encodeURIComponent(o[1]));
    });
    // The frame element takes the theme's colour scheme, as in snippet.embed (and embed.js).
    var theme = (options.filter(function (o) { return o[0] === "theme"; })[0] || [])[1];
    var scheme = {dark: "dark", auto: "light dark"}[theme];
    var tag = attrs.map(function (a) { return a[0] + '="' + escapeHtml(a[1]) + '"'; }).join(" ");
    var path = "/widget/" + encodeURIComponent(slug) + (query.length ? "?" + query.join("&") : "");
    return {
      path: path,
      text: '<div class="petition-widget-space" style="container-type:inline-size"><div style="' +
        spaceCss(space) + '">\n' +
        "<script async " + tag + "></" + "script>\n" +
        '<noscript><iframe src="' + escapeHtml(base + path) + '" title="Petition" loading="lazy" ' +
        'style="width:100%;height:' + height + 'px;border:0' +
        (scheme ? ";color-scheme:" + scheme : "") + '"></iframe></noscript>\n</div></div>'
    };
  }

  function generator() {
    var form = document.getElementById("generator");
    if (!form) return;
    var text = document.getElementById("snippet-text");
    var frame = document.getElementById("preview");
    var spaces = JSON.parse(form.dataset.spaces);
    var timer = null;
    function update() {
      var partner = form.elements.partner ? form.elements.partner.value : "";
      var lang = form.elements.lang.value;
      var accent = form.elements.accent.value.trim();
      var theme = form.elements.theme.value;
      var compact = form.elements.layout.checked;
      partner = CODE.test(partner) ? partner : "";
      accent = HEX.test(accent) ? accent : "";
      var options = [["partner", partner], ["lang", lang], ["accent", accent],
        ["theme", theme === "light" ? "" : theme], ["layout", compact ? "compact" : ""],
        ["background", form.elements.background.checked ? "transparent" : ""]];
      // By partner (a registered one's snippet reserves its consent box), language, layout.
      var mine = spaces[partner] || spaces[""];
      var space = (mine[lang] || mine[""])[compact ? "compact" : "full"];
      var built = snippet(form.dataset.base, form.dataset.slug, options, space,
        form.dataset.noscriptHeight);
      text.value = built.text;
      // The preview never signs (preview=1), whatever the options.
      var preview = built.path + (built.path.indexOf("?") < 0 ? "?" : "&") + "preview=1";
      clearTimeout(timer);
      timer = setTimeout(function () {
        var src = withHeight(preview);
        if (frame && frame.getAttribute("src") !== src) frame.setAttribute("src", src);
      }, 400);
    }
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    form.addEventListener("submit", function (event) { event.preventDefault(); update(); });
    // A saved configuration sets every option at once.
    var configs = document.getElementById("generator-configs");
    if (configs) {
      configs.elements.config.addEventListener("change", function () {
        var chosen = configs.elements.config.selectedOptions[0];
        if (!chosen || !chosen.value) return;
        var d = chosen.dataset;
        if (form.elements.partner && form.elements.partner.tagName === "SELECT") form.elements.partner.value = d.partner;
        form.elements.lang.value = d.lang;
        form.elements.accent.value = d.accent;
        form.elements.theme.value = d.theme;
        form.elements.layout.checked = d.compact === "compact";
        update();
      });
      configs.addEventListener("submit", function (event) { event.preventDefault(); });
    }
  }

  // The preview frame takes the widget's own height, as embed.js does on a partner's page: the
  // widget reports it to the origin named in its address, in the "petition-widget" envelope.
  var PREVIEW_ID = "preview";

  function withHeight(path) {
    return path + (path.indexOf("?") >= 0 ? "&" : "?") + "origin=" +
      encodeURIComponent(location.origin) + "&frame=" + PREVIEW_ID;
  }

  function previewHeight() {
    var frame = document.getElementById("preview");
    if (!frame) return;
    window.addEventListener("message", function (event) {
      if (event.origin !== location.origin || event.source !== frame.contentWindow) return;
      var message = event.data && event.data["petition-widget"];
      if (!message || message.id !== PREVIEW_ID || typeof message.height !== "number") return;
      var borders = frame.offsetHeight - frame.clientHeight; // its height includes them
      var height = Math.max(200, Math.min(20000, Math.ceil(message.height)));
      frame.style.height = height + borders + "px";
    });
    frame.setAttribute("src", withHeight(frame.getAttribute("src")));
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
    previewHeight();
    generator();
    copyButtons();
    confirmations();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
