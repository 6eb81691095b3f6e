// Pools and jobs at a glance.
"use strict";
(() => {
  const { el, links, badge, counts, clock, cost, autostop, budgetWarnings } = Orch;

  function nodeStates(states) {
    const parts = Object.entries(states || {}).sort();
    return parts.length ? parts.map(([state, n]) => `${n} ${state}`).join(", ") : "none";
  }

  function poolRow(pool) {
    return el("tr", { "data-pool": pool.id },
      el("td", {}, el("a", { href: links.pool(pool.id) }, pool.id)),
      el("td", {}, pool.backend), el("td", {}, badge(pool.state)),
      el("td", {}, `${pool.nodes.length}/${pool.target_nodes}`), el("td", {}, nodeStates(pool.node_states)),
      el("td", {}, pool.slots_in_use), el("td", {}, pool.free_slots),
      el("td", { class: "money" }, cost(pool.spend, pool.cost_note)),
      el("td", { class: "money" }, cost(pool.burn_rate, pool.cost_note, "/h")),
      el("td", { class: "autostop" }, autostop(pool.autostop, true)));
  }

  function jobRow(job) {
    const target = job.kind === "sweep" ? links.sweep(job.id) : links.job(job.id);
    return el("tr", { "data-job": job.id },
      el("td", {}, el("a", { href: target }, job.id)),
      el("td", {}, el("a", { href: links.pool(job.pool_id) }, job.pool_id)),
      el("td", {}, job.kind), el("td", {}, badge(job.state)), el("td", {}, job.total),
      el("td", {}, counts(job.task_counts)), el("td", {}, clock(job.created_at)),
      el("td", { class: "money" }, cost(job.spend, job.cost_note)));
  }

  Orch.poll(async () => {
    const data = await Orch.api("/api/overview");
    document.querySelector("#pools tbody").replaceChildren(...data.pools.map(poolRow));
    document.querySelector("#jobs tbody").replaceChildren(...data.jobs.map(jobRow));
    document.getElementById("no-pools").hidden = data.pools.length > 0;
    document.getElementById("no-jobs").hidden = data.jobs.length > 0;
    const broken = Object.entries(data.unreachable).map(([pool, why]) => `jobs of pool ${pool} are not shown: ${why}`);
    const warning = document.getElementById("unreachable");
    warning.textContent = broken.join("; ");
    warning.hidden = !broken.length;
    const budgets = document.getElementById("budget-warnings");
    budgets.replaceChildren(...budgetWarnings(data.pools).map((text) => el("div", {}, text)));
    budgets.hidden = !budgets.childElementCount;
  }, 2000);
})();
