// The export page's charts, drawn with the vendored Chart.js from the data the server
// embeds (<script type="application/json" id="export-chart-data">). The runs panel is
// swapped by htmx while a run is active, so the charts are drawn again after each swap.
(function () {
  "use strict";
  var HELD = "#805ad5", MATCHED = "#2b6cb0", RATE = "#dd6b20", ADDED = "#2f855a", REMOVED = "#c53030";

  function draw(canvas, config) {
    if (!canvas || !window.Chart) { return; }
    var existing = window.Chart.getChart(canvas);
    if (existing) { existing.destroy(); }
    new window.Chart(canvas, config);
  }

  function line(label, data, color, axis) {
    return { type: "line", label: label, data: data, borderColor: color, backgroundColor: color,
             yAxisID: axis, spanGaps: true, tension: 0, pointRadius: 3 };
  }

  function render() {
    var source = document.getElementById("export-chart-data");
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    var common = { responsive: true, maintainAspectRatio: false, animation: false,
                   interaction: { mode: "index", intersect: false } };
    draw(document.getElementById("audience-chart"), {
      type: "line",
      data: {
        labels: data.audience.labels,
        datasets: [
          line("identifiers held", data.audience.held, HELD, "y"),
          line("matched users (Snapchat)", data.audience.matched, MATCHED, "y"),
          line("match rate %", data.audience.match_rate, RATE, "rate")
        ]
      },
      options: Object.assign({}, common, {
        scales: {
          y: { beginAtZero: true, title: { display: true, text: "people / identifiers" } },
          rate: { position: "right", beginAtZero: true, suggestedMax: 100,
                  grid: { drawOnChartArea: false }, title: { display: true, text: "match rate %" } }
        }
      })
    });
    draw(document.getElementById("runs-chart"), {
      type: "bar",
      data: {
        labels: data.runs.labels,
        datasets: [
          { label: "added", data: data.runs.added, backgroundColor: ADDED },
          { label: "removed", data: data.runs.removed, backgroundColor: REMOVED }
        ]
      },
      options: Object.assign({}, common, {
        scales: { y: { beginAtZero: true, title: { display: true, text: "identifiers" } } }
      })
    });
  }

  document.addEventListener("DOMContentLoaded", render);
  document.addEventListener("htmx:afterSettle", render);
})();
