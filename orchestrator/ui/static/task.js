// One task: its details, parameters, attempts, and its output followed live (server-sent events).
// Multi-rank output ("[rank N] ...") is coloured per rank and can be narrowed to one rank.
"use strict";
(() => {
  const { el, links, badge, clock, duration, facts, notAvailable, number, cost } = Orch;
  const jobId = Orch.body.job;
  const taskId = Orch.body.task;
  const MAX_LINES = 20000;
  const RANK = /^\[rank (\d+)\]/;
  const log = document.getElementById("log");
  const status = document.getElementById("log-status");
  const rankFilter = document.getElementById("rank-filter");
  const follow = document.getElementById("follow");
  const ranks = new Set();
  let source = null;
  let partial = "";
  let partialNode = null;

  function lineNode(text) {
    const match = RANK.exec(text);
    const node = el("span", { class: match ? `line rank-${Number(match[1]) % 8}` : "line" }, text + "\n");
    if (match) {
      node.dataset.rank = match[1];
      if (!ranks.has(match[1])) {
        ranks.add(match[1]);
        rankFilter.append(el("option", { value: match[1] }, `rank ${match[1]}`));
      }
      node.hidden = rankFilter.value !== "" && rankFilter.value !== match[1];
    }
    return node;
  }

  function append(text) {
    const lines = (partial + text).split("\n");
    partial = lines.pop();
    if (partialNode) { partialNode.remove(); partialNode = null; }
    log.append(...lines.map(lineNode));
    if (partial) { partialNode = el("span", { class: "line partial" }, partial); log.append(partialNode); }
    while (log.childElementCount > MAX_LINES) log.firstElementChild.remove();
    if (follow.checked) log.scrollTop = log.scrollHeight;
  }

  function open(name) {
    if (source) source.close();
    log.replaceChildren();
    partial = "";
    partialNode = null;
    status.textContent = "waiting for output…";
    const url = `/api/jobs/${encodeURIComponent(jobId)}/tasks/${encodeURIComponent(taskId)}/logs?file=${name}`;
    source = new EventSource(url);
    source.addEventListener("text", (event) => {
      append(JSON.parse(event.data).text);
      status.textContent = "following";
    });
    source.addEventListener("end", (event) => {
      source.close();
      if (partial) { append("\n"); }
      status.textContent = `the task ended (${JSON.parse(event.data).state}); this is all of its ${name}`;
    });
    source.onerror = () => { if (source.readyState !== EventSource.CLOSED) status.textContent = "reconnecting…"; };
  }

  document.querySelectorAll("#log-tabs button").forEach((button) => button.addEventListener("click", () => {
    document.querySelectorAll("#log-tabs button").forEach((b) => b.classList.toggle("on", b === button));
    open(button.dataset.file);
  }));
  rankFilter.addEventListener("change", () => {
    for (const node of log.querySelectorAll(".line[data-rank]")) {
      node.hidden = rankFilter.value !== "" && node.dataset.rank !== rankFilter.value;
    }
  });

  function attempts(list) {
    if (list === null) return notAvailable("a task's attempts");
    return el("table", { class: "grid" },
      el("thead", {}, el("tr", {}, ["#", "state", "why it ended", "node", "exit", "started", "ended"].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.map((a, i) => el("tr", {}, el("td", {}, i + 1), el("td", {}, badge(a.state)),
        el("td", {}, a.reason || ""), el("td", {}, a.node_id || ""), el("td", {}, a.exit_code ?? ""),
        el("td", {}, clock(a.started_at)), el("td", {}, clock(a.ended_at))))));
  }

  Orch.poll(async () => {
    const task = await Orch.api(`/api/jobs/${encodeURIComponent(jobId)}/tasks/${encodeURIComponent(taskId)}`);
    document.getElementById("task-state").replaceChildren(badge(task.state));
    if (task.job.kind === "sweep") {
      document.getElementById("sweep-back").replaceChildren("· ", el("a", { href: links.sweep(jobId) }, "sweep leaderboard"));
    }
    facts(document.getElementById("task-facts"), [
      ["state", badge(task.state)], ["exit code", task.exit_code ?? ""], ["retries", String(task.retries)],
      ["node", task.node_id || ""], ["started", clock(task.started_at)], ["ended", clock(task.ended_at)],
      ["duration", duration(task.seconds)], ["cost", cost(task.cost, task.job.cost_note)], ["error", el("span", { class: "error-text" }, task.error || "")],
    ]);
    const params = Object.entries(task.params);
    facts(document.getElementById("params"), params.length ? params.map(([k, v]) => [k, number(v)])
      : [["", el("span", { class: "muted" }, "none")]]);
    document.getElementById("attempts").replaceChildren(attempts(task.attempts));
  }, 3000);

  open("stdout");
})();
