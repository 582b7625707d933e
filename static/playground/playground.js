// Small behaviours of the playground pages, without inline handlers (the CSP forbids them):
// selects that submit their form, buttons that ask first, buttons that close a panel.
(function () {
  "use strict";
  document.addEventListener("change", (e) => {
    const el = e.target.closest("[data-autosubmit]");
    if (el && el.form) el.form.requestSubmit();
  });
  document.addEventListener("click", (e) => {
    const ask = e.target.closest("[data-confirm]");
    if (ask && !window.confirm(ask.dataset.confirm)) e.preventDefault();
    const close = e.target.closest("[data-close]");
    if (close) close.closest(close.dataset.close).remove();
  });
})();
