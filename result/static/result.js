// Keeps the results page live: one websocket to /ws, every message a tally
// {"votes": {"a": 2, "b": 1}, "total": 3}; reconnects with backoff.
"use strict";
(function () {
  const status = document.getElementById("status");
  const total = document.getElementById("total");
  const options = Array.from(document.querySelectorAll("[data-option]"));
  const firstRetry = 500;
  const lastRetry = 10000;
  let retry = firstRetry;

  // Same rule as the server (share.rs): largest remainder; none (null)
  // while nothing is counted.
  function percentages(counts) {
    const weights = counts.map((c) => Math.max(c, 0));
    const whole = weights.reduce((s, c) => s + c, 0);
    if (whole === 0) return null;
    const shares = weights.map((w) => Math.floor((w * 100) / whole));
    const order = weights.map((w, i) => i).sort((i, j) => ((weights[j] * 100) % whole) - ((weights[i] * 100) % whole) || i - j);
    let missing = 100 - shares.reduce((s, p) => s + p, 0);
    for (const i of order) {
      if (missing-- <= 0) break;
      shares[i] += 1;
    }
    return shares;
  }

  function votesText(n) {
    return n === 1 ? "1 vote" : n + " votes";
  }

  function totalText(n) {
    return n === 0 ? "No votes yet" : votesText(n);
  }

  function show(tally) {
    // An option this page has no row for (votes for a letter the service
    // has no label for): the server renders it, so load the page again.
    if (Object.keys(tally.votes).some((id) => !options.some((el) => el.dataset.option === id))) {
      location.reload();
      return;
    }
    const counts = options.map((el) => tally.votes[el.dataset.option] || 0);
    const shares = percentages(counts);
    options.forEach((el, i) => {
      const percent = shares ? shares[i] : 0;
      const shown = el.querySelector(".percent");
      shown.textContent = shares ? percent + "%" : "–";
      shown.classList.toggle("none", !shares);
      el.querySelector(".fill").style.width = percent + "%";
      el.querySelector(".track").setAttribute("aria-valuenow", percent);
      el.querySelector(".count").textContent = votesText(counts[i]);
    });
    total.textContent = totalText(tally.total);
  }

  function setStatus(live) {
    status.textContent = live ? "Live" : "Reconnecting…";
    status.classList.toggle("live", live);
    status.classList.toggle("reconnecting", !live);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws");
    socket.onmessage = (event) => {
      retry = firstRetry;
      setStatus(true);
      show(JSON.parse(event.data));
    };
    socket.onclose = () => {
      setStatus(false);
      // Jitter keeps thousands of pages from reconnecting in one instant.
      setTimeout(connect, retry * (0.5 + Math.random() / 2));
      retry = Math.min(retry * 2, lastRetry);
    };
  }

  connect();
})();
