/* readrate.js: the browser widget of a readrate collector.
 *
 * A site pastes
 *   <script src="//collector.example/readrate.js" defer></script>
 *   <div data-readrate-article="ARTICLE-ID"></div>
 * and each such element gets "Read N times", a row of rating stars and "Rate this item (N votes)".
 * The widget sends one read per page view per article once the page is visible (not for an
 * element with data-readrate-count="false"), then fetches the counters of every article on the
 * page at once, and sends a vote when a reader picks a star. It talks only to its collector: the
 * folder its own src is in, or data-readrate-collector="URL" on the script tag. It never throws:
 * with the collector down the page still renders, and the counts read "–".
 */
(() => {
  "use strict";
  if (window.readrate) return; // pasted twice: one copy counts

  const DEFAULT_SCALE = {min: 1, max: 5, step: 1};
  const REFETCH_AFTER_VOTE_MS = [1000, 3000, 6000]; // the drain counts a vote within a second or two
  const READ_WAIT_MS = 3000; // the counters wait this long at most for the reads to be taken
  const MESSAGE_MS = 6000;
  const IDS_PER_REQUEST = 50; // the collector takes 100 ids a request; 50 keeps the URL short
  const UNIT = 24; // SVG user units (and pixels) per star
  const DASH = "\u2013";
  const STAR = "M12 2.1 14.5 9.1 22 9.4 16.1 13.9 18.2 21.1 12 16.9 5.8 21.1 7.9 13.9 2 9.4 9.5 9.1z";
  const CSS = `
.readrate{--readrate-on:#e69500;--readrate-avg:#f2cf7e;--readrate-off:#d5d5d5;line-height:1.5}
.readrate p{margin:.25em 0}
.readrate-stars{display:inline-flex;vertical-align:middle;margin-right:.5em}
.readrate-star{cursor:pointer;line-height:0}
.readrate-star svg{display:block;overflow:hidden}
.readrate-star path{fill:var(--readrate-off)}
.readrate-avg path{fill:var(--readrate-avg)}
.readrate-on path{fill:var(--readrate-on)}
.readrate-star:focus{outline:none}
.readrate-star:focus-visible{outline:2px solid #1a5fb4;outline-offset:1px}
.readrate-yours{margin-left:.75em;font-weight:bold}
.readrate-message{color:#b3261e}
.readrate-message:empty{margin:0}`;

  const script = document.currentScript ||
    [].find.call(document.scripts, (s) => /\/readrate\.js([?#]|$)/.test(s.src));
  const base = collectorBase(script);
  let scale = DEFAULT_SCALE;
  let widgets = [];
  const seen = new WeakSet(); // elements already set up
  const counted = new Set(); // articles whose read this page view has sent

  function collectorBase(tag) {
    try {
      const named = tag && tag.getAttribute("data-readrate-collector");
      const url = named ? new URL(named, location.href) : new URL(".", tag.src);
      return url.href.replace(/\/+$/, "");
    } catch (e) {
      return location.origin;
    }
  }

  // Event handlers and timers run through this, so nothing reaches the page's console.
  function guard(fn) {
    return (...args) => {
      try {
        return fn(...args);
      } catch (e) {
        return undefined;
      }
    };
  }

  function num(x) {
    return typeof x === "number" && isFinite(x) ? x : null;
  }

  function post(path, body) {
    // text/plain keeps the request "simple": no CORS preflight; the collector reads JSON from any type.
    return fetch(base + path, {
      method: "POST", body: JSON.stringify(body), keepalive: true, credentials: "include",
      headers: {"Content-Type": "text/plain"},
    });
  }

  function whenShown(go) {
    let done = false;
    const check = guard(() => {
      if (done || document.prerendering || document.visibilityState === "hidden") return;
      done = true;
      document.removeEventListener("visibilitychange", check);
      document.removeEventListener("prerenderingchange", check);
      go();
    });
    document.addEventListener("visibilitychange", check);
    document.addEventListener("prerenderingchange", check);
    check();
  }

  function options() {
    const n = Math.round((scale.max - scale.min) / scale.step) + 1;
    return Array.from({length: n}, (_, i) => +(scale.min + i * scale.step).toFixed(3));
  }

  function useScale(s) {
    const [min, max, step] = s ? [num(s.min), num(s.max), num(s.step)] : [];
    if (!(step > 0 && min > 0 && max > min && (max - min) / step <= 40)) return;
    if (min === scale.min && max === scale.max && step === scale.step) return;
    scale = {min, max, step};
    widgets.forEach(drawStars);
  }

  // One radio per value on the scale; each draws the part of the star row from the value below it
  // up to its own, so with half stars the left half of star 4 is "3.5 stars" and the right half "4 stars".
  function drawStars(w) {
    let from = 0;
    w.stars.innerHTML = options().map((to) => {
      let paths = "";
      for (let k = Math.floor(from); k < to; k++) paths += `<path transform="translate(${k * UNIT})" d="${STAR}"/>`;
      const width = (to - from) * UNIT;
      const html = `<span class="readrate-star" role="radio" aria-checked="false" tabindex="-1" data-value="${to}"` +
        ` aria-label="${to} ${to === 1 ? "star" : "stars"}"><svg viewBox="${from * UNIT} 0 ${width} ${UNIT}"` +
        ` width="${width}" height="${UNIT}" aria-hidden="true" focusable="false">${paths}</svg></span>`;
      from = to;
      return html;
    }).join("");
    paint(w);
  }

  function paint(w) {
    const d = w.data || {};
    const count = (n) => (num(n) === null ? DASH : n.toLocaleString("en-US"));
    w.reads.textContent = d.reads_text || `Read ${count(d.reads)} ${d.reads === 1 ? "time" : "times"}`;
    w.votes.textContent = d.votes_text || `Rate this item (${count(d.votes)} ${d.votes === 1 ? "vote" : "votes"})`;
    const avg = num(d.rating_avg);
    w.average.hidden = !w.data;
    w.average.textContent = avg === null ? "No votes yet" : `Average ${avg.toFixed(1)} of ${scale.max}`;
    if (!w.votedHere) w.mine = num(d.your_rating); // a vote sent from this page wins over older counters
    w.yours.hidden = w.mine === null;
    w.yours.textContent = `Your rating: ${w.mine}`;
    const lit = w.preview !== null ? w.preview : w.mine;
    const faded = lit === null && avg !== null ? Math.round(avg / scale.step) * scale.step : null;
    const radios = [...w.stars.children];
    const stop = radios.findIndex((r) => +r.dataset.value === lit);
    radios.forEach((r, i) => {
      const v = +r.dataset.value;
      r.setAttribute("aria-checked", String(v === w.mine));
      r.tabIndex = i === Math.max(stop, 0) ? 0 : -1; // roving tabindex: the group is one tab stop
      r.classList.toggle("readrate-on", lit !== null && v <= lit);
      r.classList.toggle("readrate-avg", faded !== null && v <= faded);
    });
  }

  function say(w, text) {
    clearTimeout(w.hush);
    w.message.textContent = text;
    w.hush = setTimeout(guard(() => { w.message.textContent = ""; }), MESSAGE_MS);
  }

  async function vote(w, rating) {
    if (w.busy) return;
    w.busy = true;
    const body = {article: w.id, rating};
    if (w.token) body.voter_token = w.token;
    try {
      const r = await post("/v1/vote", body);
      const answer = await r.json().catch(() => ({}));
      if (!r.ok) {
        say(w, answer.error || "Your rating could not be saved; please try again later.");
      } else if (answer.status !== "queued") {
        say(w, "Your rating was not counted.");
      } else {
        w.mine = num(answer.your_rating) !== null ? answer.your_rating : rating;
        w.votedHere = true;
        w.message.textContent = "";
        paint(w);
        w.timers.forEach(clearTimeout);
        w.timers = REFETCH_AFTER_VOTE_MS.map((ms) => setTimeout(guard(() => loadCounters([w.id], true)), ms));
      }
    } catch (e) {
      say(w, "Your rating could not be sent; please try again later.");
    } finally {
      w.busy = false;
    }
  }

  function onKey(w, ev) {
    const radios = [...w.stars.children];
    const at = radios.indexOf(document.activeElement);
    let to;
    switch (ev.key) {
      case "ArrowRight": case "ArrowUp": to = at + 1; break;
      case "ArrowLeft": case "ArrowDown": to = at - 1; break;
      case "Home": to = 0; break;
      case "End": to = radios.length - 1; break;
      case "Enter": case " ":
        ev.preventDefault(); // Space would scroll the page
        if (at >= 0) vote(w, +radios[at].dataset.value);
        return;
      default: return;
    }
    ev.preventDefault();
    // Arrows move and preview; only Enter or Space sends a vote, so walking the scale sends none.
    const r = radios[Math.max(0, Math.min(radios.length - 1, to))];
    w.preview = +r.dataset.value;
    paint(w);
    r.focus();
  }

  function setUp(el) {
    el.classList.add("readrate");
    el.innerHTML = '<p class="readrate-reads"></p><p class="readrate-rate"><span class="readrate-stars"' +
      ' role="radiogroup" aria-label="Rate this item"></span><span class="readrate-votes"></span></p>' +
      '<p class="readrate-summary"><span class="readrate-average"></span><span class="readrate-yours"></span></p>' +
      '<p class="readrate-message" role="status"></p>';
    const part = (name) => el.querySelector(".readrate-" + name);
    const w = {
      el, id: el.getAttribute("data-readrate-article"), token: el.getAttribute("data-readrate-voter-token"),
      counts: el.getAttribute("data-readrate-count") !== "false", data: null, mine: null, votedHere: false,
      preview: null, busy: false, timers: [], hush: 0, reads: part("reads"), stars: part("stars"),
      votes: part("votes"), average: part("average"), yours: part("yours"), message: part("message"),
    };
    const radioOf = (ev) => ev.target.closest && ev.target.closest("[role=radio]");
    const unpreview = () => { w.preview = null; paint(w); };
    w.stars.addEventListener("click", guard((ev) => { const r = radioOf(ev); if (r) vote(w, +r.dataset.value); }));
    w.stars.addEventListener("mouseover", guard((ev) => {
      const r = radioOf(ev);
      if (r) { w.preview = +r.dataset.value; paint(w); }
    }));
    w.stars.addEventListener("mouseleave", guard(unpreview));
    w.stars.addEventListener("focusout", guard((ev) => { if (!w.stars.contains(ev.relatedTarget)) unpreview(); }));
    w.stars.addEventListener("keydown", guard((ev) => onKey(w, ev)));
    drawStars(w);
    return w;
  }

  function show(answer) {
    if (!answer || !answer.articles) return; // the counts keep what they showed ("–" at first)
    useScale(answer.scale);
    for (const w of widgets) {
      const d = answer.articles[w.id];
      if (d && typeof d === "object") {
        w.data = d;
        paint(w);
      }
    }
  }

  function loadCounters(ids, fresh) {
    // The collector refuses a whole request for one bad id, so ids it cannot take are left out.
    const unique = [...new Set(ids)].filter((id) => [...id].length <= 128);
    const asks = [];
    for (let i = 0; i < unique.length; i += IDS_PER_REQUEST) {
      const query = unique.slice(i, i + IDS_PER_REQUEST).map((id) => "article=" + encodeURIComponent(id)).join("&");
      // After a vote the answer must not come from the browser's cache of the one before.
      asks.push(fetch(`${base}/v1/counters?${query}`, {credentials: "include", cache: fresh ? "no-cache" : "default"})
        .then((r) => (r.ok ? r.json() : null)).then(show).catch(() => {}));
    }
    return Promise.all(asks);
  }

  function refresh(fresh) {
    widgets = widgets.filter((w) => w.el.isConnected);
    for (const el of document.querySelectorAll("[data-readrate-article]")) {
      if (!seen.has(el) && el.getAttribute("data-readrate-article")) {
        seen.add(el);
        widgets.push(setUp(el));
      }
    }
    // A page opened in a background tab or prerendered is not read until the reader sees it.
    whenShown(() => {
      const reads = [];
      for (const w of widgets) {
        if (w.counts && !counted.has(w.id)) {
          counted.add(w.id);
          reads.push(post("/v1/read", {article: w.id}).catch(() => {}));
        }
      }
      // Counters after the reads, so they include the reads that the workers have counted by then.
      const waited = new Promise((done) => setTimeout(done, READ_WAIT_MS));
      Promise.race([Promise.all(reads), waited])
        .then(() => loadCounters(widgets.map((w) => w.id), fresh)).catch(() => {});
    });
  }

  const boot = guard(() => {
    const style = document.createElement("style");
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
    refresh(false);
  });
  window.readrate = {refresh: guard(() => refresh(true))};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
