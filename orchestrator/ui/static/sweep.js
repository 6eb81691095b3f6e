// A sweep: live leaderboard ranked by the objective, the objective against each parameter, learning
// curves (stopped trials marked), best so far over time and over spend (each trial's cost where the
// pool has a ledger and a price). Every trial links to its logs and parameters.
"use strict";
(() => {
  const { el, links, badge, number, facts, counts, cost, money } = Orch;
  const jobId = Orch.body.job;
  const charts = {};

  function leaderboard(data) {
    const table = document.getElementById("leaderboard");
    const params = [...new Set(data.rows.flatMap((row) => Object.keys(row).filter((k) => k.startsWith("param."))))];
    const priced = data.rows.some((row) => "cost_usd" in row);
    const head = ["rank", "trial", "state", data.value_key, "best step", ...(priced ? ["cost"] : []),
      ...params.map((p) => p.slice(6)), ""];
    table.tHead.replaceChildren(el("tr", {}, head.map((h) => el("th", {}, h))));
    table.tBodies[0].replaceChildren(...data.rows.map((row) => el("tr",
      { "data-trial": row.trial, class: row.state === "stopped" ? "stopped" : null },
      el("td", {}, row.rank), el("td", {}, el("a", { href: links.task(jobId, row.trial) }, row.trial)),
      el("td", {}, badge(row.state)), el("td", { class: "value" }, number(row[data.value_key])),
      el("td", {}, row.best_step ?? ""), priced ? el("td", { class: "money" }, money(row.cost_usd)) : null,
      params.map((p) => el("td", {}, number(row[p]))),
      el("td", {}, el("a", { href: links.task(jobId, row.trial), class: "small" }, "logs")))));
  }

  function parameterCharts(data) {
    const box = document.getElementById("param-charts");
    if (!data.params.length) { Charts.empty(box, "this sweep has no parameters"); return; }
    const best = data.rows.length && data.rows[0][data.value_key] !== null ? data.rows[0].trial : null;
    for (const series of data.params) {
      if (!charts[series.name]) {
        charts[series.name] = el("div", { class: "chart" });
        box.append(el("figure", { "data-param": series.name }, el("figcaption", {}, series.name), charts[series.name]));
      }
      const points = series.points.map((p) => ({ ...p, href: links.task(jobId, p.trial) }));
      Charts.scatter(charts[series.name], points, { scale: series.scale, categories: series.categories,
        xLabel: series.name, yLabel: data.value_key, best });
    }
  }

  function curves(data) {
    const series = data.curves.map((c) => ({ name: c.trial, points: c.points, stopped: c.stopped, best: c.best,
      href: links.task(jobId, c.trial) }));
    Charts.lines(document.getElementById("curves"), series, { xLabel: "step", yLabel: data.value_key,
      emptyText: "no trial has reported the objective yet" });
    const best = data.best_over_time;
    Charts.lines(document.getElementById("best"), best.length ? [{ name: `best ${data.value_key}`,
      points: best.map((p) => [p.t, p.value]), best: true, href: best.length ? links.task(jobId, best[best.length - 1].trial) : null }] : [],
    { xLabel: "seconds since the sweep started", yLabel: `best ${data.value_key}`, step: true, markers: true,
      emptyText: "no value yet" });
    const spend = data.spend;
    const box = document.getElementById("best-spend");
    if (spend.note) { box.replaceChildren(cost(null, spend.note)); return; }
    const points = spend.best_over_spend;
    Charts.lines(box, points.length ? [{ name: `best ${data.value_key}`, points: points.map((p) => [p.usd, p.value]),
      best: true, href: links.task(jobId, points[points.length - 1].trial) }] : [],
    { xLabel: "USD spent by ended trials", yLabel: `best ${data.value_key}`, step: true, markers: true,
      emptyText: "no trial has ended with a value yet" });
  }

  function bestFound(spend) {
    if (spend.note) return cost(null, spend.note);
    if (spend.best_after === null) return `trials cost ${money(spend.total)}; no best trial yet`;
    return el("span", {}, `trials cost ${money(spend.total)}; best found after ${money(spend.best_after)} (`,
      el("a", { href: links.task(jobId, spend.best_trial) }, spend.best_trial), ")");
  }

  Orch.poll(async () => {
    const [job, data] = await Promise.all([Orch.api(`/api/jobs/${encodeURIComponent(jobId)}`),
      Orch.api(`/api/sweeps/${encodeURIComponent(jobId)}`)]);
    document.getElementById("job-state").replaceChildren(badge(job.state));
    const done = Object.entries(job.task_counts).filter(([s]) => s !== "pending" && s !== "running")
      .reduce((n, [, c]) => n + c, 0);
    const planned = job.finished ? job.total : Math.max(job.planned_trials || 0, job.total);
    const controller = job.controller ? `${job.controller.running ? "running" : "not running"}, ${job.controller.passes} passes`
      + (job.controller.last_error ? `; last error: ${job.controller.last_error}` : "") : "none running";
    facts(document.getElementById("sweep-facts"), [
      ["objective", data.metric ? `${data.goal} ${data.metric}` : "no metric reported yet"],
      ["trials", `${done} of ${planned} done`], ["by state", counts(job.task_counts)],
      ["controller", controller], ["pool", el("a", { href: links.pool(job.pool_id) }, job.pool_id)],
      ["cost", el("span", { id: "best-found" }, bestFound(data.spend))],
    ]);
    leaderboard(data);
    parameterCharts(data);
    curves(data);
  }, 2000);
})();
