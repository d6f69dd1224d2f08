/* petition-widget loader: the one script partners paste, inside its placeholder:
   <div class="petition-widget-space" style="..."><div style="min-height:...">
   <script async src="BASE_URL/embed.js" data-petition="SLUG" data-partner="CODE"></script>
   </div></div>
   It puts an iframe right after its own script tag, at the height the placeholder reserved
   (so nothing on the page moves when it arrives), and keeps the frame's height in step with
   its content. A bare script tag (snippets from before placeholders) works as well: its frame
   starts 640 px tall. It defines no globals, styles only its own iframe and placeholder (inline
   and !important, so the host page's rules can neither hide nor squash it), and listens only to
   messages from the widget's origin, from its own frame, in the "petition-widget" envelope.
   See docs/widget.md. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.getAttribute("data-petition")) return;
  var origin = new URL(script.src, location.href).origin;
  var get = function (name) { return script.getAttribute("data-" + name) || ""; };
  var params = new URLSearchParams();
  ["partner", "lang", "accent", "theme", "layout", "background"].forEach(function (name) {
    if (get(name)) params.set(name, get(name));
  });
  var id = Math.random().toString(36).slice(2, 12) || "1";
  params.set("origin", location.origin);
  params.set("frame", id);

  // The placeholder: the script's parent inside an element of class petition-widget-space.
  var slot = script.parentNode;
  var space = slot && slot.parentNode;
  var reserved = 0;
  if (space && space.classList && space.classList.contains("petition-widget-space")) {
    reserved = Math.round(slot.getBoundingClientRect().height);
  }
  var initial = reserved >= 200 ? reserved : 640; // a host CSP may have refused its style

  var frame = document.createElement("iframe");
  frame.src = origin + "/widget/" + encodeURIComponent(get("petition")) + "?" + params;
  // A neutral title until the frame posts its own (the petition's title, in the language it
  // chose): the loader cannot know that language, and holds no words to keep in step.
  frame.title = get("petition");
  frame.className = "petition-widget";
  frame.loading = "lazy";
  frame.referrerPolicy = "no-referrer"; // the widget needs no partner page address
  // "Copy link" after signing; the share sheet too where the browser has one (naming a
  // feature a browser does not know makes it warn in the host page's console).
  frame.allow = "clipboard-write" + ("share" in navigator ? "; web-share" : "");
  // A frame whose colour scheme differs from its element's is painted on an opaque backdrop
  // (CSS Color Adjustment), so a dark or auto widget with data-background="transparent" was a
  // black box: the element declares the scheme its document will have.
  var theme = get("theme");
  var scheme = theme === "dark" ? "dark" : theme === "auto" ? "light dark" : "normal";
  var style = {
    display: "block", visibility: "visible", opacity: "1", position: "static", float: "none",
    width: "100%", "max-width": "100%", "min-width": "0", height: initial + "px",
    "min-height": "200px", "max-height": "none", "box-sizing": "border-box", border: "0",
    margin: "0", padding: "0", transform: "none", filter: "none", "clip-path": "none",
    "color-scheme": scheme, "pointer-events": "auto"
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
  // The frame now holds the space: the placeholder no longer reserves any (same task, so the
  // page never lays out with both or neither).
  if (reserved) slot.style.setProperty("min-height", "0", "important");
})();
