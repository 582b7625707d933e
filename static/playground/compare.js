// Playground compare page: 2-4 columns, each streaming its own run over server-sent events.
(function () {
  "use strict";
  const form = document.getElementById("compare-form");
  if (!form) return;
  const columnsEl = document.getElementById("columns");
  const addButton = document.getElementById("add-column");
  const errorEl = document.getElementById("form-error");
  const maxColumns = Number(form.dataset.maxColumns || 4);
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const streams = new Map(); // position -> EventSource
  let dirty = false; // the input changed since this comparison was created

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

  function setState(col, status, text) {
    col.dataset.status = status;
    col.querySelector(".pg-state").textContent = text;
    col.querySelector(".pg-run").disabled = status === "running";
    col.querySelector(".pg-stop").disabled = status !== "running";
  }

  function updateRatios() {
    const costs = columns().map((c) => c.querySelector(".pg-cost"))
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
    let finished = false;
    const end = (status, text) => { finished = true; source.close(); streams.delete(pos); setState(col, status, text); };
    source.addEventListener("delta", (e) => { out.textContent += JSON.parse(e.data).text; });
    source.addEventListener("done", (e) => {
      const data = JSON.parse(e.data);
      out.textContent = data.output; metrics.innerHTML = data.metrics_html;
      end("done", "Done"); updateRatios();
    });
    source.addEventListener("error", (e) => {
      if (e.data) { const data = JSON.parse(e.data); metrics.innerHTML = data.metrics_html; end("error", "Failed"); }
      else if (!finished) end("error", "Connection lost");
    });
  }

  async function runAll(only) {
    if (!columns().length) return;
    const data = new FormData(form);
    if (only !== undefined) data.set("only", only);
    const body = await post(form.dataset.createUrl, data);
    if (!body) return;
    form.dataset.comparison = body.id; dirty = false;
    history.replaceState(null, "", body.url);
    for (const c of body.columns) stream(column(c.position), c.stream_url);
    // votes and sharing belong to this new comparison
    htmx.ajax("GET", `${body.url}extras`, { target: "#comparison-extras", swap: "innerHTML" });
  }

  async function runOne(col) {
    const pos = col.dataset.position;
    if (!base() || dirty) return runAll(pos);
    const data = new FormData();
    for (const el of col.querySelectorAll("[name]")) data.set(el.name, el.value);
    const body = await post(`${base()}col/${pos}/run`, data);
    if (body) stream(col, body.stream_url);
  }

  function stop(col) {
    const pos = col.dataset.position;
    const source = streams.get(pos);
    if (source) { source.close(); streams.delete(pos); }
    setState(col, "stopped", "Stopped");
    if (base()) post(`${base()}col/${pos}/stop`, new FormData());
  }

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
    renumber();
  });

  columnsEl.addEventListener("click", (e) => {
    const col = e.target.closest(".pg-column");
    if (!col) return;
    if (e.target.closest(".pg-run")) runOne(col);
    else if (e.target.closest(".pg-stop")) stop(col);
    else if (e.target.closest(".pg-remove") && columns().length > 2) { stop(col); col.remove(); dirty = true; renumber(); }
  });

  columnsEl.addEventListener("change", (e) => {
    if (!document.getElementById("sync-settings").checked) return;
    for (const cls of ["pg-temperature", "pg-effort"]) {
      if (e.target.classList.contains(cls)) {
        for (const el of columnsEl.querySelectorAll(`.${cls}`)) el.value = e.target.value;
      }
    }
  });

  form.addEventListener("submit", (e) => e.preventDefault()); // Enter in a field runs nothing
  form.addEventListener("input", (e) => { if (!e.target.closest(".pg-column")) dirty = true; });
  document.body.addEventListener("htmx:afterSwap", () => { dirty = true; });
  form.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); runAll(); }
  });
  document.getElementById("run-all").addEventListener("click", () => runAll());
  renumber();
  updateRatios();
})();
