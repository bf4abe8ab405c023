// 采纳率看板: charts (Chart.js, bundled locally) and drill-down from any number to the suggestions behind it.
// The numbers and tables are rendered by the server; without JavaScript the page still shows them.
(function () {
  "use strict";
  var report = JSON.parse(document.getElementById("report-data").textContent);
  var labels = JSON.parse(document.getElementById("labels-data").textContent);

  function pct(v) { return v === null || v === undefined ? null : Math.round(v * 1000) / 10; }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // ---- charts ---------------------------------------------------------------------------------
  function charts() {
    if (!window.Chart) return;
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.animation = false;
    var trend = report.trend || [];
    new Chart(document.getElementById("chart-trend"), {
      data: {
        labels: trend.map(function (r) { return r.period; }),
        datasets: [
          { type: "line", label: "采纳率 %", data: trend.map(function (r) { return pct(r.adoption_rate); }),
            yAxisID: "rate", borderColor: "#2b6cb0", backgroundColor: "#2b6cb0", tension: 0.2, spanGaps: true },
          { type: "bar", label: "展示", data: trend.map(function (r) { return r.shown; }), yAxisID: "n",
            backgroundColor: "rgba(160,174,192,.45)" },
          { type: "bar", label: "采纳 + 修改后采纳", data: trend.map(function (r) { return r.accepted + r.edited; }),
            yAxisID: "n", backgroundColor: "rgba(56,161,105,.6)" }
        ]
      },
      options: { maintainAspectRatio: false, scales: {
        rate: { position: "left", min: 0, max: 100, title: { display: true, text: "采纳率 %" } },
        n: { position: "right", beginAtZero: true, grid: { drawOnChartArea: false }, title: { display: true, text: "条数" } }
      } }
    });
    function bars(id, rows, name) {
      new Chart(document.getElementById(id), {
        type: "bar",
        data: { labels: rows.map(name), datasets: [
          { label: "采纳率 %", data: rows.map(function (r) { return pct(r.adoption_rate); }), backgroundColor: "#2b6cb0" }] },
        options: { indexAxis: "y", maintainAspectRatio: false, scales: { x: { min: 0, max: 100 } },
                   plugins: { legend: { display: false } } }
      });
    }
    bars("chart-type", report.by_action_type || [], function (r) { return r.name; });
    bars("chart-rep", report.by_rep || [], function (r) { return r.name; });
  }

  // ---- drill-down -----------------------------------------------------------------------------
  var drill = document.getElementById("drill");
  var body = document.getElementById("drill-body");

  function citationList(citations) {
    var ul = el("ul", { "class": "cites" });
    citations.forEach(function (c) {
      var li = el("li");
      li.appendChild(el("span", { "class": "tag" }, c.kind === "kb" ? "知识库" : c.kind === "crm" ? "CRM" : "纪要"));
      li.appendChild(document.createTextNode(" " + (c.label || c.source || c.ref) + " "));
      if (c.quote) li.appendChild(el("q", {}, c.quote));
      ul.appendChild(li);
    });
    return ul;
  }

  function csrfToken() {  // the session's CSRF token: every state change must carry it
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  function reviewForm(row) {
    var form = el("form", { "class": "review", "data-id": row.id });
    var sel = el("select", { name: "verdict" });
    [["correct", "正确"], ["wrong", "错误"], ["harmful", "有害"]].forEach(function (v) {
      sel.appendChild(el("option", { value: v[0] }, v[1]));
    });
    var note = el("input", { name: "note", placeholder: "评审说明（错误/有害时必填）" });
    var btn = el("button", { type: "submit" }, "评审");
    var msg = el("span", { "class": "muted small" });
    form.appendChild(sel); form.appendChild(note); form.appendChild(btn); form.appendChild(msg);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      fetch("/api/suggestions/" + encodeURIComponent(row.id) + "/annotations", {
        method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify({ verdict: sel.value, note: note.value })
      }).then(function (r) { return r.json().then(function (d) { return [r.ok, d]; }); })
        .then(function (res) { msg.textContent = res[0] ? "已保存：" + res[1].verdict_label : (res[1].detail || "保存失败"); });
    });
    return form;
  }

  function render(rows, title, href) {
    drill.hidden = false;
    document.getElementById("drill-title").textContent = "下钻：" + title + "（" + rows.length + " 条）";
    document.getElementById("drill-csv").setAttribute("href",
      href.replace("/api/adoption/suggestions", "/api/adoption/export/suggestions.csv"));
    body.textContent = "";
    if (!rows.length) { body.appendChild(el("p", { "class": "muted" }, "没有符合条件的建议。")); return; }
    var table = el("table", { "class": "data drill-table" });
    var head = el("tr");
    ["展示时间", "销售", "客户", "类型", "建议与依据", "结果", "评审"].forEach(function (h) { head.appendChild(el("th", {}, h)); });
    table.appendChild(el("thead")).appendChild(head);
    var tb = el("tbody");
    rows.forEach(function (row) {
      var tr = el("tr", { "data-id": row.id });
      tr.appendChild(el("td", {}, (row.shown_at || "").slice(0, 16).replace("T", " ")));
      tr.appendChild(el("td", {}, row.rep_name));
      tr.appendChild(el("td", { title: row.customer_id }, row.customer_name || row.customer_id));
      tr.appendChild(el("td", {}, row.action_label));
      var main = el("td");
      main.appendChild(el("div", { "class": "title" }, row.title));
      main.appendChild(citationList(row.citations || []));
      tr.appendChild(main);
      var out = row.outcome_label + (row.applied ? " · 已执行" : "") +
        (row.dismiss_reason ? "（" + row.dismiss_reason + "）" : "") +
        (row.hours_to_action !== null ? " · " + row.hours_to_action + " 小时" : "");
      tr.appendChild(el("td", { "data-col": "outcome" }, out));
      var rev = el("td");
      (row.annotations || []).forEach(function (a) { rev.appendChild(el("div", { "class": "tag" }, a.verdict_label + "：" + a.note)); });
      rev.appendChild(reviewForm(row));
      tr.appendChild(rev);
      tb.appendChild(tr);
    });
    table.appendChild(tb);
    body.appendChild(table);
  }

  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a.drill") : null;
    if (!a) return;
    ev.preventDefault();
    var href = a.getAttribute("href");
    var title = "建议";
    var kpi = a.closest(".kpi");
    var cell = a.closest("td");
    if (kpi) {
      title = kpi.querySelector("span").textContent;
    } else if (cell) {
      var tr = cell.parentNode;
      var th = tr.closest("table").tHead.rows[0].cells[cell.cellIndex];
      title = tr.cells[0].textContent.trim() + " · " + (th ? th.textContent : "");
    }
    body.textContent = "加载中…";
    drill.hidden = false;
    fetch(href, { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (d) { render(d.suggestions || [], title, href); drill.scrollIntoView({ behavior: "auto" }); })
      .catch(function () { body.textContent = "加载失败，请重试。"; });
  });
  document.getElementById("drill-close").addEventListener("click", function () { drill.hidden = true; });

  charts();
})();
