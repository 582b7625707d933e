// Playground compare page: 2-4 columns, each streaming its own run over server-sent events.
(function () {
  "use strict";
  const form = document.getElementById("compare-form");
  if (!form) return;
  const columnsEl = document.getElementById("columns");
  const addButton = document.getElementById("add-column");
  const runAllButton = document.getElementById("run-all");
  const syncBox = document.getElementById("sync-settings");
  const errorEl = document.getElementById("form-error");
  const maxColumns = Number(form.dataset.maxColumns || 4);
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const streams = new Map(); // position -> EventSource
  let dirty = false; // the input changed since this comparison was created
  let sending = false; // a run request is on its way: Run waits for its answer
  let current = null; // the column whose settings were touched last (the one sync copies)
  const SYNCED = ["pg-temperature", "pg-effort"];
  const STOP_WAIT_MS = 5000; // how long a stop waits for the stream's last figures

  const columns = () => Array.from(columnsEl.querySelectorAll(".pg-column"));
  const column = (pos) => columnsEl.querySelector(`.pg-column[data-position="${pos}"]`);
  const base = () => (form.dataset.comparison ? `/playground/c/${form.dataset.comparison}/` : "");

  function showError(body) {
    const err = (body && body.error) || { message: "Something went wrong." };
    const details = err.details && typeof err.details === "object"
      ? " " + Object.entries(err.details).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("; ")
      : "";
    errorEl.textContent = err.message + details;
  }

  async function post(url, data) {
    const response = await fetch(url, { method: "POST", body: data, headers: { "X-CSRFToken": csrf } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) { showError(body); return null; }
    errorEl.textContent = "";
    return body;
  }

  const busy = (status) => status === "pending" || status === "running" || status === "stopping";

  function setState(col, status, text) {
    col.dataset.status = status;
    col.querySelector(".pg-state").textContent = text;
    col.querySelector(".pg-run").disabled = busy(status);
    col.querySelector(".pg-stop").disabled = status !== "running";
    refreshRunAll();
  }

  // Run all waits while a run request is on its way or a column's stream is open: one click,
  // one run. (A column stored as running by an earlier visit has no stream here: no wait.)
  function refreshRunAll() {
    const waiting = sending || streams.size > 0;
    runAllButton.disabled = waiting;
    runAllButton.setAttribute("aria-busy", String(sending));
    runAllButton.textContent = sending ? "Starting…" : waiting ? "Running…" : "Run all";
  }

  function updateRatios() {
    const costs = columns().filter((c) => c.dataset.status === "done").map((c) => c.querySelector(".pg-cost"))
      .filter(Boolean).map((el) => [el, Number(el.dataset.cost)]);
    const positive = costs.map(([, v]) => v).filter((v) => v > 0);
    if (!positive.length) return;
    const cheapest = Math.min(...positive);
    for (const [el, value] of costs) {
      const ratio = el.closest(".pg-metrics").querySelector(".pg-ratio");
      if (ratio) ratio.textContent = value === cheapest ? "cheapest" : `×${(value / cheapest).toFixed(1)}`;
    }
  }

  function stream(col, url) {
    const pos = col.dataset.position;
    const out = col.querySelector(".pg-output");
    const metrics = col.querySelector(".pg-metrics");
    out.textContent = ""; metrics.innerHTML = "";
    setState(col, "running", "Running…");
    const source = new EventSource(url);
    streams.set(pos, source);
    refreshRunAll();
    let finished = false;
    const end = (status, text) => {
      finished = true; source.close();
      if (streams.get(pos) === source) streams.delete(pos);
      setState(col, status, text);
    };
    source.addEventListener("delta", (e) => { out.textContent += JSON.parse(e.data).text; });
    source.addEventListener("done", (e) => {
      const data = JSON.parse(e.data);
      out.textContent = data.output; metrics.innerHTML = data.metrics_html;
      end("done", "Done"); updateRatios();
    });
    source.addEventListener("stopped", (e) => {
      const data = JSON.parse(e.data);
      if (data.output) out.textContent = data.output;
      metrics.innerHTML = data.metrics_html;
      end("stopped", "Stopped");
    });
    source.addEventListener("error", (e) => {
      if (e.data) { const data = JSON.parse(e.data); metrics.innerHTML = data.metrics_html; end("error", "Failed"); }
      else if (!finished) end("error", "Connection lost");
    });
  }

  // Columns wait ("Starting…") while their run request is on its way; a refused one goes back.
  async function whileSending(cols, send) {
    sending = true;
    const before = cols.map((c) => [c, c.dataset.status, c.querySelector(".pg-state").textContent]);
    for (const c of cols) setState(c, "pending", "Starting…");
    let body = null;
    try { body = await send(); } finally {
      sending = false;
      for (const [c, status, text] of before) if (c.dataset.status === "pending") setState(c, status, text);
      refreshRunAll();
    }
    return body;
  }

  async function runAll(only) {
    if (!columns().length || sending) return;
    if (only === undefined && runAllButton.disabled) return;
    const data = new FormData(form);
    if (only !== undefined) data.set("only", only);
    const cols = only === undefined ? columns() : [column(only)];
    const body = await whileSending(cols, () => post(form.dataset.createUrl, data));
    if (!body) return;
    form.dataset.comparison = body.id; dirty = false;
    history.replaceState(null, "", body.url);
    for (const c of body.columns) stream(column(c.position), c.stream_url);
    // votes and sharing belong to this new comparison
    htmx.ajax("GET", `${body.url}extras`, { target: "#comparison-extras", swap: "innerHTML" });
  }

  async function runOne(col) {
    if (sending || streams.has(col.dataset.position)) return;
    const pos = col.dataset.position;
    if (!base() || dirty) return runAll(pos);
    const data = new FormData();
    for (const el of col.querySelectorAll("[name]")) data.set(el.name, el.value);
    const body = await whileSending([col], () => post(`${base()}col/${pos}/run`, data));
    if (body) stream(col, body.stream_url);
  }

  // A stop asks the server, whose stream then ends with the text so far and its tokens and
  // cost ("stopped"); if that does not come in time, the stream is closed here.
  async function stop(col) {
    const pos = col.dataset.position;
    const source = streams.get(pos);
    if (!source) { if (col.dataset.status !== "done") setState(col, "stopped", "Stopped"); return; }
    setState(col, "stopping", "Stopping…");
    if (base()) await post(`${base()}col/${pos}/stop`, new FormData());
    setTimeout(() => {
      if (streams.get(pos) !== source) return;
      source.close(); streams.delete(pos);
      setState(col, "stopped", "Stopped");
    }, STOP_WAIT_MS);
  }

  function removeColumn(col) {
    const source = streams.get(col.dataset.position);
    if (source) { source.close(); streams.delete(col.dataset.position); }
    if (base() && source) post(`${base()}col/${col.dataset.position}/stop`, new FormData());
    col.remove(); dirty = true; renumber(); refreshRunAll();
  }

  // "Same settings in every column": the settings of `from` go to every other column.
  function copySettings(from, targets) {
    for (const cls of SYNCED) {
      const value = from.querySelector(`.${cls}`).value;
      for (const col of targets) if (col !== from) col.querySelector(`.${cls}`).value = value;
    }
  }
  const syncSource = () => (current && current.isConnected ? current : columns()[0]);

  function renumber() {
    columns().forEach((col, i) => {
      col.dataset.position = i;
      col.querySelector(".pg-letter").textContent = "ABCD"[i];
      col.querySelector(".pg-target").name = `col-${i}-target`;
      col.querySelector(".pg-temperature").name = `col-${i}-temperature`;
      col.querySelector(".pg-effort").name = `col-${i}-effort`;
    });
    const n = columns().length;
    columnsEl.className = `pg-columns grid-${n}`;
    addButton.disabled = n >= maxColumns;
    addButton.title = n >= maxColumns ? `At most ${maxColumns} columns` : "";
    for (const button of columnsEl.querySelectorAll(".pg-remove")) button.disabled = n <= 2;
  }

  addButton.addEventListener("click", () => {
    if (columns().length >= maxColumns) return;
    const col = document.getElementById("column-template").content.firstElementChild.cloneNode(true);
    const used = new Set(columns().map((c) => c.querySelector(".pg-target").value));
    const select = col.querySelector(".pg-target");
    const free = Array.from(select.options).find((o) => !used.has(o.value));
    if (free) select.value = free.value;
    columnsEl.appendChild(col);
    if (syncBox.checked && columns().length > 1) copySettings(syncSource(), [col]);
    renumber();
  });

  columnsEl.addEventListener("click", (e) => {
    const col = e.target.closest(".pg-column");
    if (!col) return;
    if (e.target.closest(".pg-run")) runOne(col);
    else if (e.target.closest(".pg-stop")) stop(col);
    else if (e.target.closest(".pg-remove") && columns().length > 2) removeColumn(col);
  });

  function settingChanged(e) {
    const col = e.target.closest(".pg-column");
    if (!col || !SYNCED.some((cls) => e.target.classList.contains(cls))) return;
    current = col;
    if (syncBox.checked) copySettings(col, columns());
  }
  columnsEl.addEventListener("input", settingChanged);
  columnsEl.addEventListener("change", settingChanged);
  columnsEl.addEventListener("focusin", (e) => { const col = e.target.closest(".pg-column"); if (col) current = col; });
  syncBox.addEventListener("change", () => { if (syncBox.checked) copySettings(syncSource(), columns()); });

  form.addEventListener("submit", (e) => e.preventDefault()); // Enter in a field runs nothing
  form.addEventListener("input", (e) => { if (!e.target.closest(".pg-column")) dirty = true; });
  document.body.addEventListener("htmx:afterSwap", () => { dirty = true; });
  form.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runAll(); }
  });
  runAllButton.addEventListener("click", () => runAll());
  renumber();
  refreshRunAll();
  updateRatios();
})();
