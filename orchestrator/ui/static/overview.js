// Pools and jobs at a glance.
"use strict";
(() => {
  const { el, links, badge, counts, clock, notAvailable } = Orch;

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
      el("td", {}, pool.spend === null ? notAvailable("spend") : pool.spend));
  }

  function jobRow(job) {
    const target = job.kind === "sweep" ? links.sweep(job.id) : links.job(job.id);
    return el("tr", { "data-job": job.id },
      el("td", {}, el("a", { href: target }, job.id)),
      el("td", {}, el("a", { href: links.pool(job.pool_id) }, job.pool_id)),
      el("td", {}, job.kind), el("td", {}, badge(job.state)), el("td", {}, job.total),
      el("td", {}, counts(job.task_counts)), el("td", {}, clock(job.created_at)),
      el("td", {}, job.spend === null ? notAvailable("spend") : job.spend));
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
  }, 2000);
})();
