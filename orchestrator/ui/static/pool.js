// One pool: its nodes and their states, slots in use, cost, jobs; delete when actions are on.
"use strict";
(() => {
  const { el, links, badge, counts, clock, facts, cost, money, autostop, budgetWarnings } = Orch;
  const poolId = Orch.body.pool;

  function nodeRow(node) {
    return el("tr", { "data-node": node.id }, el("td", {}, node.id), el("td", {}, node.address),
      el("td", {}, badge(node.state)), el("td", {}, node.cpus), el("td", {}, node.gpus),
      el("td", {}, node.running_tasks), el("td", {}, node.free_slots));
  }

  function jobRow(job) {
    const target = job.kind === "sweep" ? links.sweep(job.id) : links.job(job.id);
    return el("tr", { "data-job": job.id }, el("td", {}, el("a", { href: target }, job.id)),
      el("td", {}, job.kind), el("td", {}, badge(job.state)), el("td", {}, job.total),
      el("td", {}, counts(job.task_counts)), el("td", {}, clock(job.created_at)),
      el("td", { class: "money" }, cost(job.spend, job.cost_note)));
  }

  function budgets(pool) {
    if (!pool.budgets.length) return el("span", { class: "muted" }, "none (no max_spend or job budget)");
    return el("span", {}, pool.budgets.map((b) => el("div", { class: `budget budget-${b.level}` },
      `${b.what}: ${money(b.spent)} of ${money(b.limit)} (${Math.round((b.spent / b.limit) * 100)} %)`)));
  }

  Orch.poll(async () => {
    const pool = await Orch.api(`/api/pools/${encodeURIComponent(poolId)}`);
    document.getElementById("pool-state").replaceChildren(badge(pool.state));
    facts(document.getElementById("pool-facts"), [
      ["backend", pool.backend], ["nodes", `${pool.nodes.length} of ${pool.target_nodes}`],
      ["slots in use", String(pool.slots_in_use)], ["free slots", String(pool.free_slots)],
      ["address", pool.address || ""], ...(pool.detail ? [["detail", pool.detail]] : []),
    ]);
    document.querySelector("#nodes tbody").replaceChildren(...pool.nodes.map(nodeRow));
    document.getElementById("spend").replaceChildren(cost(pool.spend, pool.cost_note));
    document.getElementById("burn-rate").replaceChildren(cost(pool.burn_rate, pool.cost_note, " per hour"));
    document.getElementById("price").replaceChildren(pool.price_per_node_hour === null
      ? (pool.cost_note || "the backend's price list")
      : `${money(pool.price_per_node_hour)} per node hour (price_per_node_hour)`);
    document.getElementById("autostop").replaceChildren(autostop(pool.autostop, false));
    document.getElementById("budgets").replaceChildren(budgets(pool));
    const warnings = document.getElementById("budget-warnings");
    warnings.replaceChildren(...budgetWarnings([pool]).map((text) => el("div", {}, text)));
    warnings.hidden = !warnings.childElementCount;
    document.querySelector("#jobs tbody").replaceChildren(...pool.jobs.map(jobRow));
  }, 2000);

  Orch.action(document.getElementById("delete-pool"), {
    what: "delete this pool and everything running on it", name: poolId,
    path: `/api/pools/${encodeURIComponent(poolId)}/delete`, extra: () => ({ force: true }),
  });
})();
