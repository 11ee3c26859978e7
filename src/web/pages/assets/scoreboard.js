// The scoreboard: registers as a tablet, follows pushes (Server-Sent Events) for the games and
// teams chosen, and redraws in place what changed, marking it. A dropped stream is shown and
// resumed from the last event it had (the browser sends Last-Event-ID; a new stream after a
// re-registration passes it as last_event_id).
"use strict";

(() => {
  const { el, api, timeAgo, announce, markChanged, setStatus } = Obelix;
  const FOLLOW_KEY = "obelix.follow";
  const status = document.getElementById("stream-status");

  const names = new Map();          // slug -> name (games and teams)
  let games = [];                   // [{slug, name}]
  let teams = [];
  const scores = new Map();         // game slug -> ScoreBoard
  const medals = new Map();         // team slug -> MedalTally
  let follow = { games: null, teams: null }; // null: everything
  let tablet = null;                // {id, frontend, label}
  let source = null;                // EventSource
  let lastEventId = null;
  let reconnectTimer = null;
  let wasDown = false;

  const nameOf = (slug) => names.get(slug) || slug;
  const followed = (kind, slug) => follow[kind] === null || follow[kind].includes(slug);

  function loadFollow() {
    try {
      const saved = JSON.parse(localStorage.getItem(FOLLOW_KEY) || "null");
      if (saved && Array.isArray(saved.games) && Array.isArray(saved.teams)) follow = saved;
    } catch (_) { /* a bad value: follow everything */ }
  }

  function saveFollow() {
    localStorage.setItem(FOLLOW_KEY, JSON.stringify(follow));
  }

  // ---- drawing ----------------------------------------------------------------------------

  function ranked() {
    return teams
      .filter((t) => followed("teams", t.slug))
      .map((t) => medals.get(t.slug) || { team: t.slug, gold: 0, silver: 0, bronze: 0, version: -1 })
      .sort((a, b) => b.gold - a.gold || b.silver - a.silver || b.bronze - a.bronze
        || nameOf(a.team).localeCompare(nameOf(b.team)));
  }

  function drawMedals(changedTeam) {
    const body = document.getElementById("medal-rows");
    const rows = ranked();
    if (rows.length === 0) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No team followed.")));
      return;
    }
    let rank = 0, previous = null;
    body.replaceChildren(...rows.map((m, i) => {
      const key = `${m.gold}/${m.silver}/${m.bronze}`;
      if (key !== previous) rank = i + 1; // ties share a rank
      previous = key;
      return el("tr", { "data-team": m.team },
        el("td", { class: "rank" }, rank),
        el("th", { scope: "row", "data-badge": true }, nameOf(m.team)),
        el("td", { class: "num", "data-medal": "gold" }, m.gold),
        el("td", { class: "num", "data-medal": "silver" }, m.silver),
        el("td", { class: "num", "data-medal": "bronze" }, m.bronze),
        el("td", { class: "num" }, m.gold + m.silver + m.bronze),
        el("td", { class: "hide-narrow small muted" }, m.updated_at ? timeAgo(m.updated_at, "") : "—"));
    }));
    if (changedTeam) {
      const row = body.querySelector(`tr[data-team="${CSS.escape(changedTeam)}"]`);
      if (row) markChanged(row, "new");
    }
  }

  function gameCard(game) {
    const board = scores.get(game.slug);
    const card = el("article", { class: "game", role: "listitem", "data-game": game.slug,
      "aria-labelledby": `game-${game.slug}` });
    card.append(el("h3", { id: `game-${game.slug}`, "data-badge": true }, game.name));
    if (!board) {
      card.append(el("p", { class: "muted small" }, "Waiting for the score…"));
      return card;
    }
    const top = Math.max(...board.scores.map((s) => s.points));
    card.append(el("ol", {}, board.scores.map((s) =>
      el("li", { class: s.points === top && top > 0 ? "lead" : null, "data-team": s.team },
        el("span", {}, nameOf(s.team)), el("span", { class: "pts" }, s.points)))));
    card.append(el("p", { class: "when" }, timeAgo(board.updated_at)));
    return card;
  }

  function drawGames() {
    const shown = games.filter((g) => followed("games", g.slug));
    const box = document.getElementById("games");
    if (shown.length === 0) {
      box.replaceChildren(el("p", { class: "muted" }, "No game followed."));
      return;
    }
    box.replaceChildren(...shown.map(gameCard));
  }

  function drawGame(slug) {
    const game = games.find((g) => g.slug === slug);
    const old = document.querySelector(`[data-game="${CSS.escape(slug)}"]`);
    if (!game || !old) return drawGames();
    const card = gameCard(game);
    old.replaceWith(card);
    return card;
  }

  function drawFollowForm() {
    const box = (kind, list) => list.map((item) => el("label", {},
      el("input", { type: "checkbox", name: kind, value: item.slug, checked: followed(kind, item.slug),
        onchange: onFollowChange }),
      item.name));
    document.getElementById("follow-games").replaceChildren(...box("games", games));
    document.getElementById("follow-teams").replaceChildren(...box("teams", teams));
  }

  function onFollowChange() {
    const checked = (kind) => [...document.querySelectorAll(`input[name=${kind}]:checked`)].map((i) => i.value);
    follow = { games: checked("games"), teams: checked("teams") };
    saveFollow();
    drawMedals();
    drawGames();
    connect(); // a new subscription for the new choice
  }

  // ---- updates ------------------------------------------------------------------------------

  function applyScore(board, live) {
    const known = scores.get(board.game);
    if (known && known.version >= board.version) return;
    scores.set(board.game, board);
    if (!followed("games", board.game)) return;
    const card = drawGame(board.game);
    if (live && known && card) {
      markChanged(card, "new");
      announce(`${nameOf(board.game)}: ${board.scores.map((s) => `${nameOf(s.team)} ${s.points}`).join(", ")}`);
    }
  }

  function applyMedals(tally, live) {
    const known = medals.get(tally.team);
    if (known && known.version >= tally.version) return;
    medals.set(tally.team, tally);
    if (!followed("teams", tally.team)) return;
    drawMedals(live && known ? tally.team : null);
    if (live && known) {
      announce(`${nameOf(tally.team)}: ${tally.gold} gold, ${tally.silver} silver, ${tally.bronze} bronze`);
    }
  }

  // ---- the tablet and its stream -------------------------------------------------------------

  async function register() {
    const { json } = await api("/olympics/tablets", { method: "POST" });
    tablet = json;
    document.getElementById("tablet-info").textContent =
      `Tablet ${tablet.label || ""} is served by ${tablet.frontend}.`;
  }

  function streamUrl() {
    const params = new URLSearchParams();
    params.set("games", (follow.games ?? games.map((g) => g.slug)).join(","));
    params.set("teams", (follow.teams ?? teams.map((t) => t.slug)).join(","));
    if (lastEventId) params.set("last_event_id", lastEventId);
    return `/olympics/tablets/${tablet.id}/events?${params}`;
  }

  function down(text) {
    wasDown = true;
    status.dataset.drops = String(Number(status.dataset.drops || 0) + 1);
    setStatus(status, "down", text);
  }

  function connect() {
    if (source) source.close();
    clearTimeout(reconnectTimer);
    const es = new EventSource(streamUrl());
    source = es;
    es.onopen = () => {
      setStatus(status, "live", wasDown ? "Live again" : "Live");
      if (wasDown) announce("Live updates are back.");
      wasDown = false;
    };
    const handle = (apply) => (event) => {
      if (event.lastEventId) lastEventId = event.lastEventId;
      try { apply(JSON.parse(event.data), true); } catch (e) { console.error(e); }
    };
    es.addEventListener("score", handle(applyScore));
    es.addEventListener("medals", handle(applyMedals));
    es.onerror = () => {
      if (source !== es) return;
      if (es.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself and sends Last-Event-ID.
        down("Connection lost — reconnecting…");
        return;
      }
      // Closed for good (the server refused the stream, e.g. this tablet is no longer known):
      // register again and resume from the last event we had.
      es.close();
      down("Connection lost — reconnecting…");
      reconnectTimer = setTimeout(async () => {
        try { await register(); } catch (_) { /* the server is away: try again */ }
        if (tablet) connect(); else reconnectTimer = setTimeout(connect, 1000);
      }, 500);
    };
  }

  async function checkRaffle() {
    if (!tablet) return;
    try {
      const { json } = await api(`/olympics/raffle/winners?tablet=${encodeURIComponent(tablet.id)}`);
      const wins = (json && json.winners) || [];
      if (wins.length > 0) showRaffle();
    } catch (_) { /* shown again next time */ }
  }

  /** Reads the followed states at once (the stream's snapshot may come a moment later). */
  async function firstStates() {
    const headers = { "X-Tablet-Id": tablet.id };
    const reads = [
      ...games.filter((g) => followed("games", g.slug)).map((g) =>
        api(`/olympics/games/${encodeURIComponent(g.slug)}/score`, { headers }).then(({ json, response }) => {
          raffleHeader(response); applyScore(json, false);
        })),
      ...teams.filter((t) => followed("teams", t.slug)).map((t) =>
        api(`/olympics/teams/${encodeURIComponent(t.slug)}/medals`, { headers }).then(({ json, response }) => {
          raffleHeader(response); applyMedals(json, false);
        })),
    ];
    await Promise.allSettled(reads);
  }

  function raffleHeader(response) {
    if (response.headers.get("X-Raffle-Won")) showRaffle();
  }

  function showRaffle() {
    const banner = document.getElementById("raffle");
    if (!banner.hidden) return;
    banner.textContent = "🎉 You won the raffle! One of this tablet's requests was a winning one.";
    banner.hidden = false;
    announce(banner.textContent);
  }

  async function start() {
    loadFollow();
    const [g, t] = await Promise.all([api("/olympics/games"), api("/olympics/teams")]);
    games = g.json;
    teams = t.json;
    for (const x of [...games, ...teams]) names.set(x.slug, x.name);
    drawFollowForm();
    drawMedals();
    drawGames();
    await register();
    connect();
    await firstStates();
    setInterval(checkRaffle, 10000);
    checkRaffle();
    // Leaving the page: the tablet unregisters (a reload registers a new one).
    addEventListener("pagehide", () => {
      if (source) source.close();
      if (tablet) fetch(`/olympics/tablets/${tablet.id}`, { method: "DELETE", keepalive: true });
    });
  }

  start().catch((e) => {
    down("Cannot reach the server — retrying…");
    console.error(e);
    setTimeout(() => location.reload(), 3000);
  });
})();
