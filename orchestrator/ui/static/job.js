// One job: every task, filtered and paged by the server, loaded as the list scrolls; rows in view
// are refreshed live. Cancel when actions are on.
"use strict";
(() => {
  const { el, links, badge, clock, duration, notAvailable, facts, counts, cost } = Orch;
  const jobId = Orch.body.job;
  const PAGE = 100;
  const tbody = document.querySelector("#tasks tbody");
  const stateFilter = document.getElementById("state-filter");
  const idFilter = document.getElementById("id-filter");
  const loadMore = document.getElementById("load-more");
  let matched = 0;
  let loading = false;
  let generation = 0; // bumps when the filter changes, so late answers for an old filter are dropped
  let costNote = null; // why tasks have no cost (no ledger, no price), from the last page

  function taskRow(task) {
    const attempts = task.attempts === null ? notAvailable("attempts") : String(task.attempts.length);
    return el("tr", { "data-task": task.id, "data-state": task.state },
      el("td", {}, el("a", { href: links.task(jobId, task.id) }, task.id)), el("td", {}, badge(task.state)),
      el("td", {}, task.exit_code ?? ""), el("td", {}, task.retries), el("td", {}, attempts),
      el("td", {}, task.node_id || ""), el("td", {}, clock(task.started_at)), el("td", {}, clock(task.ended_at)),
      el("td", {}, duration(task.seconds)), el("td", { class: "money" }, cost(task.cost, costNote)),
      el("td", { class: "error-text", title: task.error || "" }, task.error || ""));
  }

  function query(offset, limit) {
    const params = new URLSearchParams({ offset, limit });
    if (stateFilter.value) params.set("state", stateFilter.value);
    if (idFilter.value.trim()) params.set("q", idFilter.value.trim());
    return `/api/jobs/${encodeURIComponent(jobId)}/tasks?${params}`;
  }

  function showCount(total) {
    document.getElementById("shown").textContent =
      `${tbody.rows.length.toLocaleString()} of ${matched.toLocaleString()} shown` +
      (matched !== total ? ` (${total.toLocaleString()} tasks in the job)` : "");
    loadMore.hidden = tbody.rows.length >= matched;
  }

  async function more() {
    if (loading || (tbody.rows.length >= matched && tbody.rows.length > 0)) return;
    loading = true;
    const mine = generation;
    try {
      const page = await Orch.api(query(tbody.rows.length, PAGE));
      if (mine !== generation) return;
      matched = page.matched;
      costNote = page.cost_note;
      tbody.append(...page.tasks.map(taskRow));
      showCount(page.total);
    } finally {
      loading = false;
    }
  }

  async function restart() {
    generation += 1;
    tbody.replaceChildren();
    matched = 0;
    loading = false;
    await more();
  }

  // Refresh the rows in view (and a margin) in place.
  async function refreshVisible() {
    const rows = tbody.rows;
    if (!rows.length || loading) return;
    const top = tbody.getBoundingClientRect().top;
    const height = rows[0].getBoundingClientRect().height || 20;
    const first = Math.max(0, Math.floor(-top / height) - 20);
    const mine = generation;
    const page = await Orch.api(query(first, 200));
    if (mine !== generation) return;
    matched = page.matched;
    costNote = page.cost_note;
    page.tasks.forEach((task, i) => {
      const row = rows[first + i];
      if (row) row.replaceWith(taskRow(task));
    });
    showCount(page.total);
  }

  async function refreshJob() {
    const job = await Orch.api(`/api/jobs/${encodeURIComponent(jobId)}`);
    document.getElementById("job-state").replaceChildren(badge(job.state));
    document.getElementById("sweep-link").hidden = job.kind !== "sweep";
    facts(document.getElementById("job-facts"), [
      ["pool", el("a", { href: links.pool(job.pool_id) }, job.pool_id)], ["kind", job.kind],
      ["tasks", `${job.total}`], ["by state", counts(job.task_counts)], ["created", clock(job.created_at)],
      ["ended", clock(job.ended_at)], ["spend", cost(job.spend, job.cost_note)],
    ]);
    if (stateFilter.options.length === 1) {
      stateFilter.append(...job.states.map((state) => el("option", { value: state }, state)));
    }
  }

  stateFilter.addEventListener("change", restart);
  let typing = null;
  idFilter.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(restart, 250); });
  loadMore.addEventListener("click", more);
  new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) more().catch((e) => Orch.showError(e.message));
  }, { rootMargin: "400px" }).observe(document.getElementById("more"));

  Orch.poll(async () => {
    await refreshJob();
    if (!tbody.rows.length) await more();
    else await refreshVisible();
  }, 3000);

  Orch.action(document.getElementById("cancel-job"), {
    what: "cancel this job (running tasks are killed)", name: jobId,
    path: `/api/jobs/${encodeURIComponent(jobId)}/cancel`,
  });
})();
