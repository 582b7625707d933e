// Team pages: <button data-copy="#selector"> copies that field's value (the new API key).
(function () {
  "use strict";
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    const field = document.querySelector(button.dataset.copy);
    if (!field) return;
    field.select();
    const done = () => { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, () => document.execCommand("copy") && done());
    } else if (document.execCommand("copy")) {
      done();
    }
  });
})();
