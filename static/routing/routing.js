// Routing pages: drag-to-reorder, confirm before a remap, a policy picker that submits.
// No inline handlers: everything is delegated from the document.
//
// Drag-to-reorder for [data-sortable] lists (HTML5 drag and drop, no library).
// Items are the container's direct [data-id] children; on drop the new order of ids is
// POSTed with htmx to data-sort-url as `order=3,1,2`, and the answer replaces
// data-sort-target. Delegated listeners, so swapped-in content works without rebinding.
// The ↑/↓ buttons next to each item do the same without a mouse.
(function () {
  "use strict";
  let dragged = null;
  let startOrder = "";
  const containerOf = (el) => el.closest("[data-sortable]");
  const orderOf = (container) =>
    Array.from(container.children)
      .filter((el) => el.dataset.id)
      .map((el) => el.dataset.id)
      .join(",");

  document.addEventListener("dragstart", (event) => {
    const item = event.target.closest && event.target.closest("[data-sortable] > [data-id]");
    if (!item) return;
    dragged = item;
    startOrder = orderOf(containerOf(item));
    item.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", item.dataset.id);
  });

  document.addEventListener("dragover", (event) => {
    if (!dragged) return;
    const over = event.target.closest && event.target.closest("[data-sortable] > [data-id]");
    if (!over || over === dragged || containerOf(over) !== containerOf(dragged)) return;
    event.preventDefault();
    const box = over.getBoundingClientRect();
    const after = event.clientY > box.top + box.height / 2;
    over.parentNode.insertBefore(dragged, after ? over.nextSibling : over);
  });

  document.addEventListener("drop", (event) => {
    if (dragged) event.preventDefault();
  });

  document.addEventListener("dragend", () => {
    if (!dragged) return;
    const container = containerOf(dragged);
    dragged.classList.remove("dragging");
    dragged = null;
    const order = orderOf(container);
    if (order === startOrder) return;
    htmx.ajax("POST", container.dataset.sortUrl, {
      source: container,
      target: container.dataset.sortTarget,
      swap: "outerHTML",
      values: { order: order },
    });
  });

  // <form data-confirm="question"> asks before it submits.
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // <select data-autosubmit> submits its form on change.
  document.addEventListener("change", (event) => {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) {
      event.target.form.submit();
    }
  });
})();
