// Prompt editor: what htmx cannot do alone.
// - keeps the Variables rows in step with the names the server detected in the templates
//   (event "variables-detected" from the preview response);
// - shows a "modified" marker, saves with Ctrl/Cmd+S, warns before leaving with unsaved edits;
// - keeps the draft in localStorage so it survives leaving the page.
(function () {
  "use strict";
  const form = document.getElementById("editor-form");
  if (!form) return;
  const rows = document.getElementById("variable-rows");
  const rowTemplate = document.getElementById("variable-row-template");
  const marker = document.getElementById("modified-marker");
  const notice = document.getElementById("draft-notice");
  const discard = document.getElementById("discard-draft");
  const saveButton = document.getElementById("save-button");
  const key = form.dataset.draftKey;
  const stash = new Map(); // rows of names no longer used, kept in case they come back
  let submitting = false;
  let restored = false;
  let baseline = null;
  let saveTimer = null;

  // The version-defining state: everything but sample values, the change note and the token.
  function state() {
    const entries = [];
    for (const [name, value] of new FormData(form)) {
      if (name === "csrfmiddlewaretoken" || name === "change_note" || name.startsWith("sample__")) continue;
      entries.push([name, String(value).replace(/\r\n/g, "\n")]);
    }
    return JSON.stringify(entries);
  }

  function dirty() {
    return baseline !== null && state() !== baseline;
  }

  function refreshMarker() {
    const isDirty = dirty();
    marker.hidden = !isDirty;
    form.dataset.dirty = isDirty ? "1" : "";
  }

  function saveDraft() {
    if (!key || submitting) return;
    try {
      if (dirty()) {
        const entries = [...new FormData(form)].filter(([name]) => name !== "csrfmiddlewaretoken");
        localStorage.setItem(key, JSON.stringify({ base: form.dataset.base, entries, at: Date.now() }));
      } else {
        localStorage.removeItem(key);
      }
    } catch (err) {
      // storage full or disabled: the beforeunload confirm still protects the draft
    }
  }

  function scheduleSave() {
    refreshMarker();
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveDraft, 200);
  }

  function newRow(name) {
    const holder = document.createElement("div");
    holder.innerHTML = rowTemplate.innerHTML.replaceAll("__NAME__", name).trim();
    return holder.firstElementChild;
  }

  function currentRows() {
    const found = new Map();
    rows.querySelectorAll(".var-row").forEach((row) => found.set(row.dataset.name, row));
    return found;
  }

  // Make the rows exactly `names`, in that order, reusing rows (and their settings) by name.
  function syncRows(names) {
    const existing = currentRows();
    let changed = false;
    for (const [name, row] of existing) {
      if (!names.includes(name)) {
        stash.set(name, row);
        row.remove();
        changed = true;
      }
    }
    names.forEach((name, index) => {
      let row = existing.get(name) || stash.get(name);
      if (!row) {
        row = newRow(name);
        changed = true;
      }
      stash.delete(name);
      if (rows.children[index] !== row) {
        rows.insertBefore(row, rows.children[index] || null);
        changed = changed || !existing.has(name);
      }
    });
    return changed;
  }

  function setValue(name, value) {
    const fields = form.querySelectorAll(`[name="${CSS.escape(name)}"]`);
    fields.forEach((field) => {
      if (field.type === "checkbox") field.checked = true;
      else if (field.type !== "hidden") field.value = value;
    });
  }

  function restoreDraft() {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(key) || "null");
    } catch (err) {
      saved = null;
    }
    if (!saved || !Array.isArray(saved.entries)) return false;
    const names = saved.entries.filter(([n]) => n === "var_name").map(([, v]) => v);
    syncRows(names);
    // checkboxes are only in the entries when checked: clear them all first
    form.querySelectorAll('input[type="checkbox"]').forEach((box) => (box.checked = false));
    for (const [name, value] of saved.entries) {
      if (name !== "var_name") setValue(name, value);
    }
    const when = new Date(saved.at || Date.now()).toLocaleString();
    notice.textContent =
      `Restored your unsaved draft from ${when}` +
      (saved.base !== form.dataset.base ? ` (it started from v${saved.base}).` : ".");
    notice.hidden = false;
    discard.hidden = false;
    return true;
  }

  // --- start ---------------------------------------------------------------------------------
  const serverBaseline = state();
  if (form.dataset.unsaved) {
    // A failed save came back with the user's text: it is unsaved work.
    baseline = "[]";
    saveDraft();
  } else {
    restored = restoreDraft();
    if (restored) baseline = serverBaseline;
  }

  document.body.addEventListener("variables-detected", (event) => {
    const names = (event.detail && event.detail.names) || [];
    const changed = syncRows(names);
    if (baseline === null) {
      // The first detection settles the rows for the saved version: that is "unmodified".
      baseline = state();
    }
    // New rows have no sample values yet: the preview already marked them empty.
    if (changed || restored) scheduleSave();
    else refreshMarker();
  });

  form.addEventListener("input", scheduleSave);
  form.addEventListener("change", scheduleSave);
  form.addEventListener("submit", () => {
    // A good save lands on the prompt page; a failed one re-renders the text as unsaved
    // work (data-unsaved), which stores the draft again.
    submitting = true;
    clearTimeout(saveTimer);
    try {
      localStorage.removeItem(key);
    } catch (err) {
      /* ignore */
    }
  });

  discard.addEventListener("click", () => {
    if (!confirm("Discard your unsaved draft?")) return;
    localStorage.removeItem(key);
    submitting = true;
    window.location.reload();
  });

  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "s") {
      event.preventDefault();
      form.requestSubmit(saveButton);
    }
  });

  window.addEventListener("beforeunload", (event) => {
    if (submitting || !dirty()) return;
    saveDraft();
    event.preventDefault();
    event.returnValue = "";
  });
})();
