// The evaluator form shows the settings of the chosen kind only (no inline handlers: the CSP
// forbids them). Hidden settings are disabled, so they are neither posted nor previewed.
(function () {
  "use strict";
  function sync(select) {
    select.form.querySelectorAll("[data-kinds]").forEach((el) => {
      const on = el.dataset.kinds.split(" ").includes(select.value);
      el.hidden = !on;
      if (el.matches("fieldset")) el.disabled = !on;
      else el.querySelectorAll("input, select, textarea").forEach((f) => { f.disabled = !on; });
    });
  }
  document.addEventListener("change", (e) => {
    if (e.target.matches("[data-evals-kind]")) sync(e.target);
  });
  document.querySelectorAll("[data-evals-kind]").forEach(sync);
})();
