// The cluster page: every group's members, who leads, who is electing, clock offsets and
// restarts, refreshed every second from the JSON the programs read.
"use strict";

(() => {
  const { el, api, announce, markChanged, setStatus } = Obelix;
  const status = document.getElementById("refresh-status");
  const tokens = {
    admin: sessionStorage.getItem("obelix.admin") || "",
    queue: sessionStorage.getItem("obelix.queue") || "",
  };
  const leaders = {}; // group -> last leader shown
  let failures = 0;

  document.getElementById("admin-token").value = tokens.admin;
  document.getElementById("queue-token").value = tokens.queue;
  document.getElementById("tokens").addEventListener("submit", (e) => {
    e.preventDefault();
    tokens.admin = document.getElementById("admin-token").value.trim();
    tokens.queue = document.getElementById("queue-token").value.trim();
    sessionStorage.setItem("obelix.admin", tokens.admin);
    sessionStorage.setItem("obelix.queue", tokens.queue);
    refresh();
  });

  const pill = (cls, text) => el("span", { class: `pill ${cls}` }, text);
  const alive = (up, text) => up ? pill("up", text || "up") : pill("down", "down");
  const signed = (ms) => (ms > 0 ? "+" : ms < 0 ? "−" : "±") + Math.abs(ms) + " ms";

  /** The id most live members name as leader. */
  function consensus(members) {
    const votes = new Map();
    for (const m of members) if (m.alive && m.leader != null) votes.set(m.leader, (votes.get(m.leader) || 0) + 1);
    let best = null, most = 0;
    for (const [id, n] of votes) if (n > most) { best = id; most = n; }
    return best;
  }

  function leaderLine(group, node, members, nameOf) {
    const electing = members.some((m) => m.alive && m.electing);
    const leader = consensus(members);
    const name = leader == null ? null : nameOf(leader);
    node.replaceChildren(
      electing ? el("span", {}, pill("warn", "electing"), " ") : "",
      name ? el("span", {}, "Leader: ", el("strong", { "data-leader": group }, name)) : el("span", { class: "muted" }, "No leader"));
    if (leaders[group] !== undefined && leaders[group] !== name && name) {
      markChanged(node, "new leader");
      announce(`${group}: ${name} now leads`);
    }
    leaders[group] = name;
  }

  async function kill(path, label) {
    if (!tokens.admin) {
      alert("Enter the admin token below first.");
      document.getElementById("admin-token").focus();
      return;
    }
    if (!confirm(`Kill ${label}? It will not be restarted.`)) return;
    try {
      await api(path, { method: "DELETE", headers: { Authorization: `Bearer ${tokens.admin}` } });
      announce(`${label} killed`);
    } catch (e) {
      alert(`Could not kill ${label}: ${e.message}`);
    }
    refresh();
  }

  function drawFrontends(members, restarts) {
    const leader = consensus(members);
    leaderLine("Olympic front-ends", document.getElementById("fe-leader"), members,
      (id) => (members.find((m) => m.id === id) || { name: `front-end ${id}` }).name);
    document.getElementById("fe-rows").replaceChildren(...members.map((m) => el("tr", { "data-member": m.name },
      el("th", { scope: "row" }, m.name, el("span", { class: "muted small" }, ` #${m.id}`)),
      el("td", {}, alive(m.alive)),
      el("td", {}, !m.alive ? "" : m.electing ? pill("warn", "electing") : m.id === leader ? pill("leader", "leader") : "follower"),
      el("td", { class: "num" }, m.clock_offset_ms == null ? "—" : signed(m.clock_offset_ms)),
      el("td", { class: "num" }, restarts.get(m.name) ?? m.restarts ?? 0),
      el("td", { class: "num hide-narrow" }, m.tablets ?? "—"),
      el("td", { class: "num hide-narrow" }, m.updates ? m.updates.count : "—"),
      el("td", {}, m.alive ? el("button", { class: "danger", type: "button", "aria-label": `Kill ${m.name}`,
        onclick: () => kill(`/admin/frontends/${m.id}`, m.name) }, "Kill") : ""))));
  }

  function drawRooms(servers, restarts) {
    const leader = consensus(servers);
    leaderLine("Room servers", document.getElementById("rooms-leader"), servers,
      (id) => (servers.find((s) => s.id === id) || { name: `room server ${id}` }).name);
    document.getElementById("rooms-rows").replaceChildren(...servers.map((s) => el("tr", { "data-member": s.name },
      el("th", { scope: "row" }, s.name),
      el("td", {}, alive(s.alive, s.ready ? "up" : "catching up")),
      el("td", {}, !s.alive ? "" : s.electing ? pill("warn", "electing") : s.id === leader ? pill("leader", "leader") : "follower"),
      el("td", { class: "num" }, restarts.get(s.name) ?? 0),
      el("td", { class: "num" }, s.applied ?? "—"),
      el("td", { class: "num hide-narrow" }, s.reservations ?? "—"),
      el("td", {}, s.alive ? el("button", { class: "danger", type: "button", "aria-label": `Kill ${s.name}`,
        onclick: () => kill(`/admin/rooms/servers/${s.id}`, s.name) }, "Kill") : ""))));
  }

  function drawBooks(view, restarts) {
    const rows = [
      ...(view.replicas || []).map((r) => el("tr", { "data-member": r.name },
        el("th", { scope: "row" }, r.name),
        el("td", {}, alive(r.alive, r.state)),
        el("td", {}, "catalog replica"),
        el("td", { class: "num" }, restarts.get(r.name) ?? 0),
        el("td", { class: "num" }, r.last_applied ?? "—"),
        el("td", { class: "num hide-narrow" }, r.resyncs ?? "—"))),
      ...(view.order_servers || []).map((o) => el("tr", { "data-member": o.name },
        el("th", { scope: "row" }, o.name),
        el("td", {}, alive(o.alive)),
        el("td", {}, "order server"),
        el("td", { class: "num" }, restarts.get(o.name) ?? 0),
        el("td", { class: "num" }, "—"),
        el("td", { class: "num hide-narrow" }, "—"))),
    ];
    document.getElementById("books-rows").replaceChildren(...rows);
  }

  function drawQueue(actors) {
    const queue = actors.filter((a) => a.name.startsWith("queue-"));
    const role = (name) => name.includes("write-manager") ? "write manager"
      : name.includes("read-manager") ? "read manager" : name.includes("broker") ? "broker" : "";
    document.getElementById("queue-rows").replaceChildren(...queue.map((a) => el("tr", { "data-member": a.name },
      el("th", { scope: "row" }, a.name),
      el("td", {}, alive(a.alive)),
      el("td", {}, role(a.name)),
      el("td", { class: "num" }, a.restarts ?? 0))));
  }

  async function drawTopics() {
    const box = document.getElementById("topics");
    if (!tokens.queue) return;
    try {
      const { json } = await api("/queue/topics", { headers: { Authorization: `Bearer ${tokens.queue}` } });
      if (!json.length) { box.replaceChildren(el("p", { class: "muted small" }, "No topics yet.")); return; }
      // Lag is shown when the server reports it (GET /queue/topics has no lag today).
      const hasLag = json.some((t) => t.lag != null);
      box.replaceChildren(el("div", { class: "table-wrap" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Topic"), el("th", { scope: "col", class: "num" }, "Partitions"),
          el("th", { scope: "col" }, "Brokers"), hasLag ? el("th", { scope: "col", class: "num" }, "Lag") : null)),
        el("tbody", {}, json.map((t) => el("tr", {},
          el("th", { scope: "row" }, t.name), el("td", { class: "num" }, t.partitions),
          el("td", {}, (t.brokers || []).map((b) => `broker ${b}`).join(", ")),
          hasLag ? el("td", { class: "num" }, t.lag ?? "—") : null))))));
    } catch (e) {
      box.replaceChildren(el("p", { class: "muted small" }, `Topics: ${e.message}`));
    }
  }

  async function settle(promise) {
    try { return (await promise).json; } catch (e) { return e instanceof Obelix.HttpError ? e.body : null; }
  }

  async function refresh() {
    const [cluster, rooms, books, ready] = await Promise.all([
      settle(api("/cluster")), settle(api("/rooms/servers")),
      settle(api("/bookstore/replicas")), settle(api("/readyz")),
    ]);
    if (!cluster && !ready) {
      failures += 1;
      setStatus(status, "down", "Cannot reach the server — retrying…");
      return;
    }
    if (failures > 0) announce("Connected again.");
    failures = 0;
    const actors = (ready && ready.actors) || [];
    const restarts = new Map(actors.map((a) => [a.name, a.restarts]));
    if (cluster && cluster.members) drawFrontends(cluster.members, restarts);
    if (rooms && rooms.servers) drawRooms(rooms.servers, restarts);
    if (books) drawBooks(books, restarts);
    drawQueue(actors);
    await drawTopics();
    setStatus(status, "live", `Live · ${new Date().toLocaleTimeString()}`);
  }

  async function loop() {
    await refresh().catch((e) => console.error(e));
    setTimeout(loop, 1000);
  }
  loop();
})();
