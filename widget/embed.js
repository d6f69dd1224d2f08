/* petition-widget loader: the one script partners paste.
   <script async src="BASE_URL/embed.js" data-petition="SLUG" data-partner="CODE" data-lang="ru"></script>
   It puts an iframe right after its own script tag and keeps the frame's height in step with
   its content. It defines no globals, styles only its own iframe (inline and !important, so the
   host page's rules can neither hide nor squash it, and nothing else on the page is touched),
   and listens only to messages from the widget's origin, from its own frame, in the
   "petition-widget" envelope. See docs/widget.md. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.getAttribute("data-petition")) return;
  var origin = new URL(script.src, location.href).origin;
  var get = function (name) { return script.getAttribute("data-" + name) || ""; };
  var lang = get("lang");
  var params = new URLSearchParams();
  [["partner", get("partner")], ["lang", lang], ["accent", get("accent")]].forEach(function (p) {
    if (p[1]) params.set(p[0], p[1]);
  });
  var id = Math.random().toString(36).slice(2, 12) || "1";
  params.set("origin", location.origin);
  params.set("frame", id);

  var frame = document.createElement("iframe");
  frame.src = origin + "/widget/" + encodeURIComponent(get("petition")) + "?" + params;
  // A neutral title until the frame posts its own (the petition's title, in the language it
  // chose): the loader cannot know that language, and holds no words to keep in step.
  frame.title = get("petition");
  frame.className = "petition-widget";
  frame.loading = "lazy";
  frame.referrerPolicy = "no-referrer"; // the widget needs no partner page address
  frame.allow = "clipboard-write"; // the "Copy link" button after signing
  var style = {
    display: "block", visibility: "visible", opacity: "1", position: "static", float: "none",
    width: "100%", "max-width": "100%", "min-width": "0", height: "640px", "min-height": "200px",
    "max-height": "none", "box-sizing": "border-box", border: "0", margin: "0", padding: "0",
    transform: "none", filter: "none", "clip-path": "none", "color-scheme": "normal",
    "pointer-events": "auto"
  };
  for (var key in style) frame.style.setProperty(key, style[key], "important");

  window.addEventListener("message", function (event) {
    if (event.origin !== origin || event.source !== frame.contentWindow) return;
    var message = event.data && event.data["petition-widget"];
    if (!message || message.id !== id || typeof message.height !== "number") return;
    var height = Math.max(200, Math.min(20000, Math.ceil(message.height)));
    frame.style.setProperty("height", height + "px", "important");
    if (typeof message.title === "string" && message.title) frame.title = message.title.slice(0, 200);
  });

  // A host page whose Content-Security-Policy does not allow our frame (frame-src) shows a blank
  // box instead: a plain link to the widget takes its place (docs/partners.md: what to allow).
  document.addEventListener("securitypolicyviolation", function (event) {
    if (String(event.blockedURI).indexOf(origin) !== 0 || !frame.parentNode) return;
    var link = document.createElement("a");
    var shown = new URLSearchParams(params);
    shown.delete("origin");
    shown.delete("frame");
    link.href = origin + "/widget/" + encodeURIComponent(get("petition")) + "?" + shown;
    link.target = "_blank";
    link.rel = "noopener";
    link.className = "petition-widget-link";
    link.textContent = link.href;
    frame.parentNode.replaceChild(link, frame);
  });

  script.parentNode.insertBefore(frame, script.nextSibling);
})();
