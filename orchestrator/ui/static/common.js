// Helpers every page uses: JSON fetches, element building, formatting, polling, actions.
"use strict";

const Orch = (() => {
  const body = document.body.dataset;
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;

  // The banner. A `sticky` message (what an action the user took says) stays until the next one;
  // any other is cleared by the next refresh that succeeds.
  function showError(message, sticky = false) {
    const box = document.getElementById("error");
    box.textContent = message || "";
    box.hidden = !message;
    box.dataset.sticky = message && sticky ? "yes" : "";
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(data.error + (data.hint ? ` (${data.hint})` : ""));
    return data;
  }

  async function post(path, payload) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Orch-CSRF": meta("orch-csrf") },
      body: JSON.stringify(payload),
    });
    const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
    if (!response.ok) throw new Error(data.error + (data.hint ? ` (${data.hint})` : ""));
    return data;
  }

  // el("a", {href: "/x", class: "id"}, "text", child) -> element
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const enc = encodeURIComponent;
  const links = {
    pool: (id) => `/pools/${enc(id)}`,
    job: (id) => `/jobs/${enc(id)}`,
    sweep: (id) => `/sweeps/${enc(id)}`,
    task: (job, task) => `/jobs/${enc(job)}/tasks/${enc(task)}`,
  };

  function badge(state) {
    return el("span", { class: `state state-${state}` }, state);
  }

  function notAvailable(what) {
    return el("span", { class: "na", title: `${what || "this figure"} is not reported yet` }, "not available");
  }

  function clock(seconds) {
    if (!seconds) return "";
    return new Date(seconds * 1000).toLocaleTimeString([], { hour12: false });
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const m = Math.floor(seconds / 60);
    if (m < 60) return `${m} m ${Math.round(seconds % 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} m`;
  }

  function number(value) {
    if (value === null || value === undefined) return "";
    if (typeof value !== "number") return String(value);
    return Number.isInteger(value) ? String(value) : value.toPrecision(6).replace(/\.?0+(e|$)/, "$1");
  }

  // USD as `orch` prints it (format_money): amounts under a cent keep four decimals.
  function money(usd) {
    const digits = usd !== 0 && Math.abs(usd) < 0.01 ? 4 : 2;
    return `${usd.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })} USD`;
  }

  // A USD figure, or in its place why there is none (no cost ledger, no price set), never a 0.
  function cost(usd, note, suffix) {
    if (usd === null || usd === undefined) return el("span", { class: "na", title: note || "" }, note || "not available");
    return money(usd) + (suffix || "");
  }

  // When the pool stops (or deletes) itself; `short` for table cells.
  function autostop(a, short) {
    if (!a) return "";
    const verb = a.autodelete ? "deletes" : "stops";
    if (a.state === "scheduled") {
      return short ? `${clock(a.stops_at)} (in ${a.in_text})`
        : `idle: ${verb} itself at ${clock(a.stops_at)} (in ${a.in_text}) unless a task starts`;
    }
    if (!short) return a.text;
    return { never: "never", stopped: "stopped", deleted: "deleted itself" }[a.state]
      || `${verb} after ${duration(a.idle_timeout)} idle`;
  }

  // Budget lines at 80 % or more ("warn") or reached, for a warning banner.
  function budgetWarnings(pools) {
    return pools.flatMap((pool) => (pool.budgets || []).filter((b) => b.level !== "ok").map((b) => b.text));
  }

  function counts(taskCounts) {
    const parts = Object.entries(taskCounts || {}).sort();
    if (!parts.length) return el("span", { class: "muted" }, "no tasks");
    return el("span", { class: "counts" }, parts.map(([state, n]) => el("span", { class: `count state-${state}` },
      `${n} ${state}`)));
  }

  function facts(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
  }

  // Run refresh() now and every `ms` while the tab is visible; errors show in the banner until a
  // refresh succeeds (an action's sticky message stays).
  function poll(refresh, ms) {
    let timer = null;
    const live = document.getElementById("live");
    async function tick() {
      try {
        await refresh();
        if (!document.getElementById("error").dataset.sticky) showError("");
        live.classList.remove("stale");
      } catch (error) {
        showError(error.message);
        live.classList.add("stale");
      }
      timer = setTimeout(tick, document.hidden ? ms * 5 : ms);
    }
    tick();
    return () => clearTimeout(timer);
  }

  // A destructive action: the user types the name to confirm, then it is POSTed.
  function action(button, { what, name, path, extra }) {
    if (meta("orch-actions") !== "on") return;
    button.closest(".actions").hidden = false;
    button.addEventListener("click", async () => {
      const typed = window.prompt(`Type "${name}" to ${what}.`);
      if (typed === null) return;
      if (typed !== name) { showError(`not confirmed: you typed "${typed}", not "${name}"`, true); return; }
      try {
        await post(path, { confirm: name, ...(extra ? extra() : {}) });
        showError("");
        button.textContent = "done";
        button.disabled = true;
      } catch (error) {
        showError(error.message, true);
      }
    });
  }

  return { body, api, post, el, links, badge, notAvailable, clock, duration, number, counts, facts, poll, action,
           showError, money, cost, autostop, budgetWarnings };
})();
