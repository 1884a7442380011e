// ctflow view: the colour theme, before the page is painted (loaded in <head>).
// Airflow 3 keeps its theme as a "light"/"dark" class on its own <html> (next-themes); this view runs
// in Airflow's same-origin frame, so it copies that class and follows it when it changes. Opened on
// its own it uses Airflow's saved choice ("theme" in localStorage), else prefers-color-scheme (CSS).
(function () {
  "use strict";
  var root = document.documentElement;
  function parentRoot() {
    try { return window.parent !== window ? window.parent.document.documentElement : null; } catch (err) { return null; }
  }
  function chosen() {
    var top = parentRoot();
    if (top && top.classList.contains("dark")) return "dark";
    if (top && top.classList.contains("light")) return "light";
    try {
      var saved = window.localStorage.getItem("theme");
      if (saved === "dark" || saved === "light") return saved;
    } catch (err) { /* storage blocked: the system's preference */ }
    return null;
  }
  function apply() {
    var theme = chosen();
    root.classList.remove("light", "dark");
    if (theme) root.classList.add(theme);
  }
  apply();
  var top = parentRoot();
  if (top && window.MutationObserver) {
    new MutationObserver(apply).observe(top, { attributes: true, attributeFilter: ["class"] });
  }
  window.addEventListener("storage", function (event) { if (event.key === "theme") apply(); });
})();
