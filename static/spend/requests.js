/* Request explorer: close the drawer (and put the list's URL back), open a row with the
   keyboard. Everything else is htmx attributes on the server-rendered page. */
(function () {
  "use strict";
  document.addEventListener("click", function (e) {
    const close = e.target.closest("[data-close]");
    if (!close) return;
    const drawer = close.closest(close.dataset.close);
    if (drawer && document.getElementById("drawer")) {
      drawer.remove();
      if (window.history.length > 1 && /\/requests\/[^/]+\/$/.test(window.location.pathname)) {
        window.history.back();
      }
    }
  });
  document.addEventListener("keydown", function (e) {
    const row = e.target.closest && e.target.closest(".rq-row");
    if (row && e.key === "Enter") htmx.trigger(row, "click");
  });
})();
