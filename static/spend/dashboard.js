/* Usage dashboard: the daily spend chart (stacked by model) and the budget burn chart.
   The page itself is server-rendered and swapped by htmx; this only draws the charts from
   the JSON the server embeds, and turns a click on a legend item or a bar into a filter
   (an htmx request whose URL is pushed to the history, so the URL reflects the filter). */
(function () {
  "use strict";

  const PALETTE = ["#3b5bdb", "#2b8a3e", "#e67700", "#c92a2a", "#7048e8", "#0b7285",
                   "#d6336c", "#5c940d", "#862e9c", "#495057"];
  const charts = {};

  // As core.money.usd prints it: cents with thousands from a dollar up, else four significant
  // digits ($0.0123, $0.000045).
  function money(value) {
    const n = Math.abs(Number(value));
    const sign = Number(value) < 0 ? "-" : "";
    if (n >= 1 || n === 0) {
      return sign + "$" + n.toLocaleString("en-US", {minimumFractionDigits: 2, maximumFractionDigits: 2});
    }
    const places = Math.max(2, 3 - Math.floor(Math.log10(n)));
    return sign + "$" + n.toFixed(places).replace(/(\.\d\d\d*?)0+$/, "$1");
  }

  function readJSON(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function filterTo(changes) {
    const params = new URLSearchParams(window.location.search);
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) params.delete(key); else params.set(key, value);
    }
    const url = window.location.pathname + "?" + params.toString();
    htmx.ajax("GET", url, {target: "#dashboard", swap: "outerHTML", select: "#dashboard"}).then(function () {
      window.history.pushState({switchboardDashboard: true}, "", url);
    });
  }

  function drawSpend() {
    const data = readJSON("spend-chart-data");
    const canvas = document.getElementById("spend-chart");
    if (!data || !canvas || typeof Chart === "undefined") return;
    if (charts.spend) charts.spend.destroy();
    const datasets = data.datasets.map(function (ds, i) {
      return {
        label: ds.label,
        data: ds.cost.map(Number),
        requests: ds.requests,
        tokens: ds.tokens,
        backgroundColor: PALETTE[i % PALETTE.length],
        stack: "spend",
      };
    });
    charts.spend = new Chart(canvas, {
      type: "bar",
      data: {labels: data.labels, datasets: datasets},
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: {mode: "nearest", intersect: true},
        scales: {
          x: {stacked: true},
          y: {stacked: true, beginAtZero: true, ticks: {callback: money}},
        },
        plugins: {
          legend: {
            position: "bottom",
            onClick: function (_event, item) {
              filterTo({model: datasets[item.datasetIndex].label});
            },
          },
          tooltip: {
            callbacks: {
              label: function (ctx) {
                const ds = ctx.dataset;
                const i = ctx.dataIndex;
                return ds.label + ": " + money(data.datasets[ctx.datasetIndex].cost[i]) +
                  " · " + ds.requests[i].toLocaleString() + " requests · " +
                  ds.tokens[i].toLocaleString() + " tokens";
              },
            },
          },
        },
        onClick: function (_event, elements) {
          if (!elements.length) return;
          const el = elements[0];
          const day = data.labels[el.index];
          filterTo({model: datasets[el.datasetIndex].label, range: "custom", start: day, end: day});
        },
        onHover: function (event, elements) {
          event.native.target.style.cursor = elements.length ? "pointer" : "default";
        },
      },
    });
  }

  function drawBurn() {
    const data = readJSON("burn-chart-data");
    const canvas = document.getElementById("burn-chart");
    if (!data || !canvas || typeof Chart === "undefined") return;
    if (charts.burn) charts.burn.destroy();
    const limit = Number(data.limit);
    charts.burn = new Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: [
          {label: "Spent", data: data.actual.map(function (v) { return v === null ? null : Number(v); }),
           borderColor: "#3b5bdb", backgroundColor: "#3b5bdb", pointRadius: 0, spanGaps: false},
          {label: "Projected", data: data.projection.map(function (v) { return v === null ? null : Number(v); }),
           borderColor: "#e67700", borderDash: [6, 4], pointRadius: 0},
          {label: "Limit", data: data.labels.map(function () { return limit; }),
           borderColor: "#c92a2a", borderWidth: 1, pointRadius: 0},
        ],
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: {y: {beginAtZero: true, ticks: {callback: money}}},
        plugins: {legend: {position: "bottom"},
                  tooltip: {callbacks: {label: function (ctx) { return ctx.dataset.label + ": " + money(ctx.raw); }}}},
      },
    });
  }

  function draw() {
    drawSpend();
    drawBurn();
  }

  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.elt && (event.detail.elt.id === "dashboard" || event.detail.elt.closest("#dashboard"))) draw();
  });
  // Leave unset filters out of the URL (`?model=x`, not `?team=&model=x&tier=`).
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt.closest || !event.detail.elt.closest("#dashboard")) return;
    const params = event.detail.parameters;
    for (const key of Array.from(params.keys ? params.keys() : Object.keys(params))) {
      if (params.get ? params.get(key) === "" : params[key] === "") {
        if (params.delete) params.delete(key); else delete params[key];
      }
    }
  });
  // A click anywhere on a table row filters by it, as its link does: the link (boosted by
  // htmx) makes the one request. No hx-trigger filter: those need eval, which the CSP forbids.
  document.addEventListener("click", function (event) {
    const row = event.target.closest && event.target.closest("#dashboard tr.clickable");
    if (!row || event.target.closest("a, button, input, select")) return;
    const link = row.querySelector("a[href]");
    if (link) link.click();
  });
  // Back/forward over entries pushed by filterTo: htmx does not own them, so reload.
  window.addEventListener("popstate", function (event) {
    if (event.state && event.state.switchboardDashboard) window.location.reload();
  });
})();
