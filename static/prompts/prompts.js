// Prompt pages (history, publish, approvals): confirms and the Publish dialog.
// No inline handlers anywhere, so the pages work under a nonce-based Content-Security-Policy.
(function () {
  "use strict";

  // <form data-confirm="Question?">: one confirm before it submits (e.g. rollback).
  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  // Buttons that close the dialog they are in (or go back on the stand-alone page).
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-close-dialog]");
    if (!button) return;
    const dialog = button.closest("dialog");
    if (dialog) dialog.close();
    else window.history.back();
  });

  // The Publish dialog opens once htmx has put the publish form in it.
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "publish-body") {
      const dialog = document.getElementById("publish-dialog");
      if (dialog && !dialog.open) dialog.showModal();
    }
  });

  // After "Save and publish": open the dialog for the version just saved.
  window.addEventListener("load", () => {
    const dialog = document.getElementById("publish-dialog");
    const number = dialog && dialog.dataset.openFor;
    if (!number) return;
    const link = document.querySelector(`[data-testid="publish-${number}"]`);
    if (link) htmx.ajax("GET", link.getAttribute("href"), { target: "#publish-body" });
  });
})();
