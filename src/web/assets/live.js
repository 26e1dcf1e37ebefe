// gtmd's web view: follow the daemon's changes without a reload.
//
// The server says "state <version>" over server-sent events whenever the
// daemon publishes a new snapshot; a page that is behind fetches itself
// again and swaps its <main>. A form someone is filling in is kept as it
// is across the swap. Ages ("running for 3.2 s") count up every second
// here, so an idle daemon sends nothing. Names typed into "Your name" are
// remembered in this browser.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var busy = false, again = false;

  function version() {
    var m = document.querySelector("main");
    return m ? m.getAttribute("data-version") : null;
  }

  function span(ms) {
    if (ms < 1000) return ms + " ms";
    if (ms < 120000) return (ms / 1000).toFixed(1) + " s";
    return (ms / 60000).toFixed(1) + " min";
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-since]").forEach(function (el) {
      el.textContent = span(Math.max(0, now - Number(el.getAttribute("data-since"))));
    });
  }

  function names() {
    var name = localStorage.getItem("gtmd-name") || "";
    document.querySelectorAll("input[name=by]").forEach(function (el) {
      if (!el.value) el.value = name;
    });
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var fresh = doc.querySelector("main");
    var old = document.querySelector("main");
    if (!fresh || !old) return;
    // Keep what someone is in the middle of: the <details> they opened,
    // and a form they changed.
    var open = [];
    old.querySelectorAll("details[open] form[data-key]").forEach(function (f) {
      open.push(f.getAttribute("data-key"));
    });
    var twins = {};
    fresh.querySelectorAll("form[data-key]").forEach(function (f) {
      twins[f.getAttribute("data-key")] = f;
      if (open.indexOf(f.getAttribute("data-key")) >= 0 && f.closest("details")) {
        f.closest("details").open = true;
      }
    });
    old.querySelectorAll("form[data-key][data-dirty]").forEach(function (form) {
      var twin = twins[form.getAttribute("data-key")];
      if (twin) twin.replaceWith(form);
    });
    old.replaceWith(document.adoptNode(fresh));
    names();
    tick();
  }

  // The version the server announced last: a page that is still older
  // after a fetch (a failed one, a proxy's) tries again a second later, so
  // a change is never left unshown while the daemon goes quiet.
  var announced = 0;

  function behind() {
    return announced > Number(version() || 0);
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html) swap(html); })
      .catch(function () {})
      .then(function () {
        busy = false;
        if (again) { again = false; refresh(); }
        else if (behind()) setTimeout(refresh, 1000);
      });
  }

  function follow() {
    var es = new EventSource("/events");
    es.addEventListener("state", function (e) {
      if (live) live.className = "live on";
      announced = Number(e.data) || 0;
      if (e.data !== version()) refresh();
    });
    es.onerror = function () { if (live) live.className = "live off"; };
  }

  document.addEventListener("input", function (e) {
    var form = e.target.form;
    if (form) form.setAttribute("data-dirty", "1");
    if (e.target.name === "by") localStorage.setItem("gtmd-name", e.target.value);
  });
  document.addEventListener("submit", function (e) {
    e.target.removeAttribute("data-dirty");
  });

  names();
  tick();
  setInterval(tick, 1000);
  if (window.EventSource) follow();
})();
