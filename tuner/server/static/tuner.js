// tuner's pages: charts (Chart.js) and live updates. Every text from the store is written with
// textContent or drawn on a canvas by Chart.js: nothing from the data is ever parsed as HTML.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const page = document.body.dataset.page;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  // -- numbers: the same rules as the pages' templates (tuner.advice.formatting) ---------------

  function rounded(value, options) {
    // Round half to even on the number's exact value, as Python's format() does.
    return new Intl.NumberFormat("en-US", {useGrouping: false, roundingMode: "halfEven",
                                           ...options}).format(value + 0);  // + 0: no "-0"
  }

  function general(value, digits) {
    // Python's "%.{digits}g": fixed for exponents -4 .. digits-1, else 1.193e-06.
    if (value === 0) return "0";
    const [mantissa, exponent] = rounded(value, {notation: "scientific",
                                                 maximumSignificantDigits: digits}).split("E");
    const power = Number(exponent);
    if (power < -4 || power >= digits) {
      return mantissa + "e" + (power < 0 ? "-" : "+") + String(Math.abs(power)).padStart(2, "0");
    }
    return rounded(value, {maximumFractionDigits: digits - 1 - power});
  }

  function fixed(value, decimals) {
    return rounded(value, {minimumFractionDigits: decimals, maximumFractionDigits: decimals});
  }

  function number(value) {
    if (value === null || value === undefined) return "-";
    if (typeof value === "boolean") return value ? "true" : "false";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return String(value);
    return general(value, 4);
  }

  function isPercent(metric) {
    return String(metric || "").toLowerCase().includes("acc");
  }

  function metricText(value, metric) {
    // An accuracy in percent, anything else to four significant digits: one format per metric.
    if (typeof value !== "number") return "-";
    return isPercent(metric) ? fixed(value * 100, 1) + "%" : general(value, 4);
  }

  function spreadText(value, metric) {
    // A standard deviation in the metric's units (without the % sign); ? when unknown.
    if (typeof value !== "number") return "?";
    return isPercent(metric) ? fixed(value * 100, 1) : general(value, 2);
  }

  function lr(value) {
    if (typeof value !== "number") return "-";
    const [mantissa, exponent] = value.toExponential(1).split("e");
    return mantissa.replace(/\.0$/, "") + "e" + Number(exponent);
  }

  function plural(count, word, many) {
    return count + " " + (count === 1 ? word : (many || word + "s"));
  }

  function paramText(key, value) {
    return key + "=" + (key === "lr" && typeof value === "number" ? lr(value) : number(value));
  }

  function paramsText(params) {
    const entries = Object.entries(params || {});
    return entries.length ? entries.map(([k, v]) => paramText(k, v)).join(", ") : "-";
  }

  window.tunerFormat = {number, metricText, spreadText, lr, plural, paramsText};

  function row(cells) {
    const tr = el("tr");
    for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
    return tr;
  }

  function progress(done, total) {
    const bar = el("progress");
    bar.max = Math.max(total, 1);
    bar.value = done;
    const td = el("td");
    td.appendChild(bar);
    return td;
  }

  function statusCell(status) {
    return el("td", status, "status status-" + String(status).replace(/[^a-z-]/g, ""));
  }

  // The optimizers most often compared get colours of their own, far apart (Tableau's
  // qualitative palette of 10): two of them never look alike.
  const NAMED_COLOURS = {
    adam: "#1f77b4", adamw: "#ff7f0e", sgd: "#2ca02c", momentum: "#d62728", lion: "#9467bd",
    muon: "#8c564b", soap: "#e377c2", prodigy: "#7f7f7f", ademamix: "#bcbd22",
    "schedulefree-adamw": "#17becf",
  };

  function colour(name) {
    // An optimizer's colour from its name alone, the same on every page and in every store:
    // its own (NAMED_COLOURS), else an FNV-1a hash of the name to a hue, lightness and
    // saturation fixed so every hue reads on white.
    if (Object.prototype.hasOwnProperty.call(NAMED_COLOURS, name)) return NAMED_COLOURS[name];
    let hash = 2166136261;
    for (const char of String(name)) {
      hash ^= char.codePointAt(0);
      hash = Math.imul(hash, 16777619) >>> 0;
    }
    const hue = (hash % 36) * 10;
    const channel = (n) => {
      const k = (n + hue / 30) % 12;
      const level = 0.42 - 0.28 * Math.max(-1, Math.min(k - 3, 9 - k, 1));
      return Math.round(level * 255).toString(16).padStart(2, "0");
    };
    return "#" + channel(0) + channel(8) + channel(4);
  }
  window.tunerColour = colour;

  // -- live updates: poll the page's JSON twin --------------------------------------------------

  function poll(url, apply, seconds, gone) {
    // Ask every `seconds` until `apply` answers false (nothing will change any more) or the
    // data is gone (404: `gone` says so on the page); body[data-polling] tells which.
    document.body.dataset.polling = "on";
    async function once() {
      let again = true;
      try {
        const response = await fetch(url, {headers: {Accept: "application/json"},
                                           cache: "no-store"});
        if (response.ok) {
          again = apply(await response.json()) !== false;
          const count = Number(document.body.dataset.updates || "0") + 1;
          document.body.dataset.updates = String(count);
        } else if (response.status === 404 && gone) {
          gone();
          again = false;
        }
      } catch (error) {
        // the server may be restarting: try again at the next tick
      }
      if (again) setTimeout(once, seconds * 1000);
      else document.body.dataset.polling = "off";
    }
    setTimeout(once, seconds * 1000);
  }

  const SETTLED = ["finished", "incomplete"];
  // A study in one of these changes no more by itself (extending it is a write: reload).

  function studyGone() {
    // The study was deleted while its page was open: say so instead of its last status.
    const status = document.getElementById("study-status");
    status.textContent = "deleted";
    status.className = "status status-deleted";
    const notice = el("p", "This study was deleted: its trials and runs are no longer in the " +
                      "store. The page shows them as they last were.", "notice");
    notice.id = "study-gone";
    document.querySelector("main h1").after(notice);
    for (const id of ["manage", "note-edit"]) {
      const form = document.getElementById(id);
      if (form) form.remove();
    }
  }

  function studyLink(name) {
    const a = el("a", name);
    a.href = "/studies/" + encodeURIComponent(name);
    return a;
  }

  function taskCell(name, id) {
    // A task's name, linked to its page when the store has its record.
    const td = el("td");
    if (id === null || id === undefined) {
      td.textContent = name;
    } else {
      const a = el("a", name);
      a.href = "/tasks/" + encodeURIComponent(id);
      td.appendChild(a);
    }
    return td;
  }

  function trialCell(study, trial) {
    // The trial's number, linked to its page.
    const a = el("a", trial.number, "trial-link");
    a.href = "/studies/" + encodeURIComponent(study) + "/trials/" + encodeURIComponent(trial.id);
    const td = el("td");
    td.appendChild(a);
    return td;
  }

  function emptyRow(columns, text) {
    const td = el("td", text, "muted");
    td.colSpan = columns;
    const tr = row([td]);
    tr.className = "empty";
    return tr;
  }

  function renderStudies(studies) {
    const body = document.getElementById("studies-body");
    if (!body) return;
    if (!studies.length) {
      body.replaceChildren(emptyRow(5, "No studies yet."));
      return;
    }
    body.replaceChildren(...studies.map((s) => {
      const name = el("td");
      name.appendChild(studyLink(s.name));
      const tr = row([name, taskCell(s.task, s.task_id), statusCell(s.status),
                      progress(s.trials_done, s.trials_total),
                      el("td", s.trials_done + "/" + s.trials_total, "progress-text")]);
      tr.dataset.study = s.name;
      return tr;
    }));
  }

  function renderStudy(detail) {
    // Returns false once the study is settled: polling ends there.
    const study = detail.study;
    const status = document.getElementById("study-status");
    status.textContent = study.status;
    status.className = "status status-" + String(study.status).replace(/[^a-z-]/g, "");
    const bar = document.getElementById("study-progress");
    bar.max = Math.max(study.trials_total, 1);
    bar.value = study.trials_done;
    document.getElementById("study-progress-text").textContent =
      study.trials_done + "/" + study.trials_total;
    document.getElementById("study-workers").textContent = plural(study.workers, "worker");
    document.getElementById("optimizers-body").replaceChildren(...study.per_optimizer.map(
      (o) => row([el("td", o.optimizer, "optimizer"), progress(o.done, o.total),
                  o.done + "/" + o.total, o.running, o.complete, o.pruned, o.diverged,
                  metricText(o.best_value, study.metric),
                  el("td", paramsText(o.best_params), "params")])));
    showNote(detail.note);
    if (window.tunerTrials) window.tunerTrials.update(detail.trials);
    if (window.tunerCharts && window.tunerCharts.history) {
      setHistory(window.tunerCharts.history, detail.history || {});
    }
    return !SETTLED.includes(study.status);
  }

  function showNote(note) {
    // The study's note, as text (an empty one shows the stylesheet's placeholder).
    const shown = document.getElementById("study-note");
    if (!shown || note === undefined) return;
    shown.textContent = note || "";
    shown.classList.toggle("empty", !note);
  }

  // -- the trials table: sorted by clicking a header, filtered by the form above it ------------

  const TRIAL_COLUMNS = {
    number: (t) => t.number, optimizer: (t) => t.optimizer, slot: (t) => t.slot,
    status: (t) => t.status, value: (t) => t.value, seeds: (t) => t.seeds,
    finished: (t) => t.finished_at,
  };
  const MOST_TRIALS = 500;  // the API's largest page

  function compareCells(a, b) {
    // Numbers as numbers, anything else as text; the caller puts missing values last.
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b));
  }

  function sortedTrials(items, column, descending) {
    if (!column) return items;
    const key = TRIAL_COLUMNS[column];
    const missing = (v) => v === null || v === undefined;
    return [...items].sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      if (missing(x) || missing(y)) return missing(x) - missing(y);  // none last, both ways
      return (descending ? -1 : 1) * compareCells(x, y) || b.id - a.id;
    });
  }

  function trialRow(studyName, metric, t) {
    return row([trialCell(studyName, t), el("td", t.optimizer, "optimizer"), t.slot,
                statusCell(t.status), metricText(t.value, metric), t.seeds,
                el("td", paramsText(t.params), "params"),
                el("td", t.finished_at ? t.finished_at.replace("T", " ").slice(0, 19) : "-",
                   "when")]);
  }

  function trialsTable(studyName, metric, first) {
    // The table shows the latest trials the study's data brings, sorted as the headers say;
    // once a filter is set, or the value column sorts (the best may be older than the latest
    // page), it asks /api/studies/NAME/trials for the matching ones (up to MOST_TRIALS).
    const form = document.getElementById("trial-filters");
    const table = document.getElementById("trials");
    const body = document.getElementById("trials-body");
    const count = document.getElementById("trials-count");
    const percent = isPercent(metric);
    const state = {column: null, descending: false, page: first, asked: false};
    if (percent) form.querySelectorAll(".unit").forEach((unit) => { unit.textContent = "%"; });

    function query() {
      const asked = new URLSearchParams();
      for (const [name, raw] of new FormData(form)) {
        const text = String(raw).trim();
        if (!text) continue;
        const bound = name === "min_value" || name === "max_value";
        asked.set(name, bound && percent ? String(Number(text) / 100) : text);
      }
      return asked;
    }

    function render() {
      const page = state.page;
      const items = sortedTrials(page.items, state.column, state.descending);
      count.textContent = state.asked
        ? "(" + items.length + " of " + page.total + " matching)"
        : "(latest " + items.length + " of " + page.total + ")";
      for (const th of table.querySelectorAll("th[data-sort]")) {
        const sorted = th.dataset.sort === state.column;
        th.setAttribute("aria-sort", sorted ? (state.descending ? "descending" : "ascending")
                                            : "none");
      }
      if (!items.length) {
        body.replaceChildren(emptyRow(8, state.asked ? "No trial matches these filters."
          : "No trials yet: start a worker with the commands above."));
      } else {
        body.replaceChildren(...items.map((t) => trialRow(studyName, metric, t)));
      }
    }

    async function load() {
      const asked = query();
      if (state.column === "value") asked.set("sort", state.descending ? "-value" : "value");
      state.asked = [...asked.keys()].length > 0;
      if (!state.asked) {
        render();
        return;
      }
      asked.set("limit", String(MOST_TRIALS));
      const url = "/api/studies/" + encodeURIComponent(studyName) + "/trials?" + asked;
      const response = await fetch(url, {headers: {Accept: "application/json"},
                                         cache: "no-store"});
      const answer = await response.json().catch(() => ({error: response.statusText}));
      if (!response.ok) {
        count.textContent = "(" + answer.error + ")";
        return;
      }
      state.page = answer;
      render();
      document.body.dataset.trialLoads = String(Number(document.body.dataset.trialLoads || 0) + 1);
    }

    for (const th of table.querySelectorAll("th[data-sort]")) {
      th.addEventListener("click", () => {
        state.descending = state.column === th.dataset.sort && !state.descending;
        state.column = th.dataset.sort;
        if (state.column === "value" || state.asked) load(); else render();
      });
    }
    form.addEventListener("change", load);
    form.addEventListener("submit", (event) => { event.preventDefault(); load(); });
    form.addEventListener("reset", () => setTimeout(() => {
      state.page = first;
      load();
    }, 0));
    return {
      update(page) {
        // The study's fresh data: its latest trials, or, when filtered, ask again.
        first = page;
        if (state.asked) load();
        else {
          state.page = page;
          render();
        }
      },
    };
  }

  // -- charts -----------------------------------------------------------------------------------

  function powersOfTen(value) {
    // Log axes: label the powers of ten only (1e-3, 1e-2, ...).
    const exponent = Math.log10(value);
    return Math.abs(exponent - Math.round(exponent)) < 1e-9 ? "1e" + Math.round(exponent) : "";
  }

  function niceStep(span) {
    // 1, 2 or 5 times a power of ten: about a fifth of the span.
    const rough = span / 5;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    const mantissa = rough / power;
    return (mantissa <= 1 ? 1 : mantissa <= 2 ? 2 : mantissa <= 5 ? 5 : 10) * power;
  }

  function bounds(type, values, floor) {
    // The axis's ends: a labelled tick beyond every point (a point never sits on the edge): the
    // powers of ten around the points on a log axis, a step of 1, 2 or 5 x 10^k beyond them on
    // a linear one (not below `floor`: no negative step counts).
    const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v) &&
                                        (type !== "logarithmic" || v > 0));
    if (!finite.length) return {};
    const low = Math.min(...finite);
    const high = Math.max(...finite);
    if (type === "logarithmic") {
      let min = Math.pow(10, Math.floor(Math.log10(low) + 1e-9));
      if (min >= low * (1 - 1e-9)) min /= 10;
      let max = Math.pow(10, Math.ceil(Math.log10(high) - 1e-9));
      if (max <= high * (1 + 1e-9)) max *= 10;
      return {min, max};
    }
    const step = niceStep(high - low || Math.abs(high) || 1);
    let min = Math.floor(low / step) * step;
    if (min >= low - step * 1e-9) min -= step;
    if (low > 0 && min < 0) min = 0;  // zero is already beyond a positive point
    if (floor !== undefined && min < floor) min = floor;
    let max = Math.ceil(high / step) * step;
    if (max <= high + step * 1e-9) max += step;
    return {min, max, step};
  }

  function axis(type, text, values, format, floor) {
    const {min, max, step} = bounds(type, values || [], floor);
    const options = {type, title: {display: true, text}, min, max};
    if (type === "logarithmic") {
      options.ticks = {callback: powersOfTen, autoSkip: false};
      // grid lines at the labelled powers of ten only
      options.grid = {color: (context) => context.tick && context.tick.label ? "#e5e7eb"
                                                                            : "transparent"};
    } else {
      options.ticks = {stepSize: step, callback: format || ((value) => general(value, 4))};
    }
    return options;
  }

  function axisType(values) {
    // A metric spanning several orders of magnitude (a loss near zero) reads on a log axis.
    const finite = values.filter((v) => typeof v === "number" && Number.isFinite(v));
    if (!finite.length || finite.some((v) => v <= 0)) return "linear";
    return Math.max(...finite) / Math.min(...finite) > 1000 ? "logarithmic" : "linear";
  }

  function worstOf(values, direction) {
    // The worst of the measured values, where a diverged point (which has none) is drawn.
    if (!values.length) return 0;
    return direction === "maximize" ? Math.min(...values) : Math.max(...values);
  }

  function pointSets(label, name, measured, diverged, place) {
    // An optimizer's points in its colour, and its diverged ones as crosses; place(p, crossed)
    // puts each on the chart.
    const sets = [{label: label, backgroundColor: colour(name), borderColor: colour(name),
                   pointRadius: 4, data: measured.map((p) => place(p, false))}];
    if (diverged.length) {
      sets.push({label: label + " (diverged)", backgroundColor: colour(name),
                 borderColor: colour(name), pointStyle: "crossRot", pointRadius: 6,
                 data: diverged.map((p) => place(p, true))});
    }
    return sets;
  }

  function lrChart(canvas, points, metric, direction) {
    const names = Object.keys(points);
    const finite = names.flatMap((n) => points[n].filter((p) => p.mean !== null).map((p) => p.mean));
    const worst = worstOf(finite, direction);
    const datasets = [];
    for (const name of names) {
      const measured = points[name].filter((p) => p.mean !== null && p.lr > 0);
      const diverged = points[name].filter((p) => p.diverged && p.lr > 0);
      // An lr of a convention of its own (Muon's) is named beside the optimizer; the server
      // leaves out the lrs that are no step size at all (multipliers).
      const meaning = points[name].length ? points[name][0].lr_meaning : null;
      const label = meaning && meaning !== "step size" ? name + " (lr: " + meaning + ")" : name;
      datasets.push(...pointSets(label, name, measured, diverged, (p, crossed) =>
        ({x: p.lr, y: crossed ? worst : p.mean, point: p})));
    }
    return new Chart(canvas, {
      type: "scatter",
      data: {datasets},
      options: {
        animation: false, maintainAspectRatio: false,
        scales: {
          x: axis("logarithmic", "learning rate", names.flatMap((n) => points[n].map((p) => p.lr))),
          y: axis(axisType(finite), metric, finite, (value) => metricText(value, metric)),
        },
        plugins: {
          tooltip: {callbacks: {
            title: (items) => items.length ? items[0].dataset.label : "",
            label: (item) => {
              // the result, then each parameter once (the lr as learning rates are written)
              const p = item.raw.point;
              const result = p.diverged ? "diverged"
                : metric + " " + metricText(p.mean, metric) + " ± " + spreadText(p.std, metric) +
                  " (" + plural(p.seeds, "seed") + ")";
              return [result, ...Object.entries(p.params || {}).map(([k, v]) => paramText(k, v))];
            },
          }},
        },
      },
    });
  }

  function curveChart(canvas, curves, metric) {
    const names = Object.keys(curves);
    const datasets = [];
    const values = names.flatMap((n) => curves[n].flatMap((c) => c.values));
    for (const name of names) {
      curves[name].forEach((curve, seed) => {
        datasets.push({
          label: name, seedIndex: seed, seed: curve.seed === undefined ? seed + 1 : curve.seed,
          borderColor: colour(name), backgroundColor: colour(name),
          borderWidth: 1.5, pointRadius: 0, showLine: true, spanGaps: false,
          data: curve.steps.map((step, i) => ({x: step, y: curve.values[i]})),
        });
      });
    }
    return new Chart(canvas, {
      type: "scatter",
      data: {datasets},
      options: {
        animation: false, maintainAspectRatio: false,
        scales: {
          x: axis("linear", "step", names.flatMap((n) => curves[n].flatMap((c) => c.steps)),
                  undefined, 0),
          y: axis(axisType(values), metric, values, (value) => metricText(value, metric)),
        },
        plugins: {
          legend: {labels: {filter: (item, chart) => chart.datasets[item.datasetIndex].seedIndex === 0}},
          tooltip: {callbacks: {
            label: (item) => item.dataset.label + " (seed " + item.dataset.seed + "): " +
              metric + " " + metricText(item.parsed.y, metric) + " at step " + item.parsed.x,
          }},
        },
      },
    });
  }

  function trialsAxis(most) {
    // k = 1..most trials: whole numbers; a log axis labelled 1, 2, 5, 10, ... above 20 trials.
    const title = {display: true, text: "trials of tuning (k)"};
    if (most <= 20) {  // a tick beyond the first and the last k
      return {type: "linear", min: 0, max: most + 1, title, ticks: {stepSize: 1, precision: 0}};
    }
    const round = (value) => {
      const mantissa = value / Math.pow(10, Math.floor(Math.log10(value) + 1e-9));
      return Math.abs(mantissa - Math.round(mantissa)) < 1e-6 &&
        [1, 2, 5].includes(Math.round(mantissa)) ? String(value) : "";
    };
    return {type: "logarithmic", min: 1, max: most, title,
            ticks: {callback: round, autoSkip: false}};
  }

  function budgetChart(canvas, curves, metric) {
    // Per optimizer three datasets: the interval's low and high edges (the band fills between
    // them) and the expected best, the one line the legend and the tooltip show.
    const datasets = [];
    const values = curves.flatMap((c) => [...c.low, ...c.high]);
    const points = (series) => series.map((value, i) => ({x: i + 1, y: value}));
    for (const curve of curves) {
      const edge = {borderWidth: 0, pointRadius: 0, pointHitRadius: 0, spanGaps: false,
                    backgroundColor: colour(curve.optimizer) + "30", role: "band"};
      datasets.push({...edge, label: curve.optimizer + " (5%)", data: points(curve.low),
                     fill: false});
      datasets.push({...edge, label: curve.optimizer + " (95%)", data: points(curve.high),
                     fill: "-1"});
      datasets.push({
        label: curve.optimizer, role: "expected", curve, borderColor: colour(curve.optimizer),
        backgroundColor: colour(curve.optimizer), borderWidth: 2, pointRadius: 2,
        fill: false, data: points(curve.expected),
      });
    }
    const most = Math.max(1, ...curves.map((c) => c.trials));
    return new Chart(canvas, {
      type: "line",
      data: {datasets},
      options: {
        animation: false, maintainAspectRatio: false,
        interaction: {mode: "index", intersect: false},  // every optimizer at the hovered k
        scales: {
          x: trialsAxis(most),
          y: axis(axisType(values), "expected best " + metric, values,
                  (value) => metricText(value, metric)),
        },
        plugins: {
          legend: {labels: {filter: (item, chart) =>
            chart.datasets[item.datasetIndex].role === "expected"}},
          tooltip: {
            filter: (item) => item.dataset.role === "expected",
            callbacks: {
              title: () => "",
              label: (item) => {
                const curve = item.dataset.curve;
                const k = item.dataIndex;
                return curve.optimizer + ", " + plural(k + 1, "trial") + ": " +
                  metricText(curve.expected[k], metric) + " (" +
                  metricText(curve.low[k], metric) + " - " + metricText(curve.high[k], metric) + ")";
              },
            },
          },
        },
      },
    });
  }

  function historyDatasets(history) {
    // Per optimizer: the best so far as a line, and each complete trial's value as dots.
    return Object.entries(history).flatMap(([name, h]) => [
      {label: name, role: "best", borderColor: colour(name), backgroundColor: colour(name),
       borderWidth: 2, pointRadius: 0, showLine: true, stepped: "before", spanGaps: true,
       data: h.trials.map((k, i) => ({x: k, y: h.best[i]}))},
      {label: name + " (trial)", role: "trial", borderColor: colour(name),
       backgroundColor: colour(name) + "80", pointRadius: 3, showLine: false,
       data: h.trials.map((k, i) => ({x: k, y: h.values[i]})).filter((p) => p.y !== null)},
    ]);
  }

  function historyScales(history, metric) {
    const values = Object.values(history).flatMap((h) => h.values);
    const most = Math.max(1, ...Object.values(history).map((h) => h.trials.length));
    return {
      x: {type: "linear", min: 0, max: most + 1, title: {display: true, text: "finished trials"},
          ticks: {stepSize: Math.max(1, Math.ceil(most / 10)), precision: 0}},
      y: axis(axisType(values), "best " + metric + " so far", values,
              (value) => metricText(value, metric)),
    };
  }

  function setHistory(chart, history) {
    chart.data.datasets = historyDatasets(history);
    chart.options.scales = historyScales(history, chart.metric);
    chart.update();
  }

  function historyChart(canvas, history, metric) {
    const chart = new Chart(canvas, {
      type: "scatter",
      data: {datasets: historyDatasets(history)},
      options: {
        animation: false, maintainAspectRatio: false,
        scales: historyScales(history, metric),
        plugins: {
          legend: {labels: {filter: (item, data) => data.datasets[item.datasetIndex].role === "best"}},
          tooltip: {callbacks: {
            label: (item) => item.dataset.label + ", trial " + item.parsed.x + ": " +
              metricText(item.parsed.y, metric),
          }},
        },
      },
    });
    chart.metric = metric;
    return chart;
  }

  function drawCharts(points, curves, metric, direction, budgetCurves) {
    // Each optimizer in its own colour (from its name: the same on every page).
    window.tunerCharts = {};
    if (typeof Chart === "undefined") return;
    const lrCanvas = document.getElementById("lr-chart");
    if (lrCanvas) window.tunerCharts.lr = lrChart(lrCanvas, points || {}, metric, direction);
    const curveCanvas = document.getElementById("curve-chart");
    if (curveCanvas) window.tunerCharts.curves = curveChart(curveCanvas, curves || {}, metric);
    const budgetCanvas = document.getElementById("budget-chart");
    if (budgetCanvas) {
      window.tunerCharts.budget = budgetChart(budgetCanvas, budgetCurves || [], metric);
    }
  }

  // -- an optimizer on a task: importance, a slice per hyperparameter, parallel coordinates ----

  function valueText(name, value) {
    // A hyperparameter's value as the tables write it (an lr as learning rates are written).
    return name === "lr" && typeof value === "number" ? lr(value) : number(value);
  }

  function choiceIndex(axis, value) {
    const text = JSON.stringify(value);
    return axis.choices.findIndex((choice) => JSON.stringify(choice) === text);
  }

  function position(axis, value) {
    // Where a value sits on its axis: 0 at the lowest, 1 at the highest (a log axis on a log
    // scale, choices in order); null when the configuration has no such value.
    if (value === undefined || value === null && axis.scale !== "categorical") return null;
    if (axis.scale === "categorical") {
      const index = choiceIndex(axis, value);
      return axis.choices.length > 1 ? index / (axis.choices.length - 1) : 0.5;
    }
    const scaled = (v) => axis.scale === "log" ? Math.log10(v) : v;
    const [low, high] = [scaled(axis.low), scaled(axis.high)];
    return high > low ? (scaled(value) - low) / (high - low) : 0.5;
  }

  function rangeText(axis, format) {
    if (axis.scale === "categorical") {
      const text = axis.choices.map((choice) => number(choice)).join(" | ");
      return text.length > 40 ? text.slice(0, 39) + "…" : text;
    }
    return format(axis.low) + " .. " + format(axis.high);
  }

  function configurationLines(c, metric) {
    // A configuration's result, then each parameter once.
    const result = c.diverged ? "diverged"
      : metric + " " + metricText(c.mean, metric) + " ± " + spreadText(c.std, metric) +
        " (" + plural(c.seeds, "seed") + ")";
    return [result, ...Object.entries(c.params || {}).map(([k, v]) => paramText(k, v))];
  }

  function importanceChart(canvas, importance, optimizer) {
    const names = Object.keys(importance.shares);
    return new Chart(canvas, {
      type: "bar",
      data: {labels: names, datasets: [{
        label: optimizer, backgroundColor: colour(optimizer), borderColor: colour(optimizer),
        data: names.map((name) => importance.shares[name] * 100)}]},
      options: {
        indexAxis: "y", animation: false, maintainAspectRatio: false,
        scales: {
          x: {type: "linear", min: 0, max: 100, title: {display: true,
              text: "share of the variation explained (%)"},
              ticks: {stepSize: 20, callback: (value) => value + "%"}},
          y: {type: "category", ticks: {autoSkip: false}},
        },
        plugins: {
          legend: {display: false},
          tooltip: {callbacks: {
            label: (item) => item.label + " explains " + fixed(item.parsed.x, 0) +
              "% of the variation",
          }},
        },
      },
    });
  }

  function sliceChart(canvas, param, configurations, metric, direction, optimizer) {
    // One hyperparameter against the metric: each configuration's mean; the diverged ones as
    // crosses at the worst value (they have none).
    const has = (c) => Object.prototype.hasOwnProperty.call(c.params || {}, param.name);
    const measured = configurations.filter((c) => c.mean !== null && has(c));
    const diverged = configurations.filter((c) => c.diverged && has(c));
    const means = measured.map((c) => c.mean);
    const worst = worstOf(means, direction);
    const categorical = param.scale === "categorical";
    const x = (c) => categorical ? choiceIndex(param, c.params[param.name]) : c.params[param.name];
    const datasets = pointSets(optimizer, optimizer, measured, diverged, (c, crossed) =>
      ({x: x(c), y: crossed ? worst : c.mean, configuration: c}));
    let xAxis;
    if (categorical) {  // the choices at 0, 1, ...; an unlabelled tick beyond each end
      const n = param.choices.length;
      xAxis = {type: "linear", min: -1, max: n, title: {display: true, text: param.name},
               ticks: {stepSize: 1, autoSkip: false, callback: (value) =>
                 Number.isInteger(value) && value >= 0 && value < n
                   ? number(param.choices[value]) : ""}};
    } else {
      const values = [...measured, ...diverged].map((c) => c.params[param.name]);
      xAxis = param.scale === "log" ? axis("logarithmic", param.name, values)
        : axis("linear", param.name, values, (value) => valueText(param.name, value));
    }
    return new Chart(canvas, {
      type: "scatter",
      data: {datasets},
      options: {
        animation: false, maintainAspectRatio: false,
        scales: {
          x: xAxis,
          y: axis(axisType(means), metric, [...means, ...(diverged.length ? [worst] : [])],
                   (value) => metricText(value, metric)),
        },
        plugins: {
          legend: {display: false},
          tooltip: {callbacks: {
            title: (items) => items.length ? items[0].dataset.label : "",
            label: (item) => configurationLines(item.raw.configuration, metric),
          }},
        },
      },
    });
  }

  function shade(quality) {
    // Light (did worst) to dark (did best): one hue, so the optimizer's colour is not implied.
    const [light, dark] = [[201, 214, 232], [11, 46, 107]];
    return "#" + light.map((channel, i) => Math.round(channel + (dark[i] - channel) * quality)
      .toString(16).padStart(2, "0")).join("");
  }

  function parallelChart(canvas, parameters, configurations, metric, direction) {
    // A line chart over categorical x (the hyperparameters, then the metric), each axis
    // normalised to [0, 1]; the axes' ranges under their names, the real values on hover.
    const measured = configurations.filter((c) => c.mean !== null);
    const means = measured.map((c) => c.mean);
    const [low, high] = means.length ? [Math.min(...means), Math.max(...means)] : [0, 0];
    const metricAxis = {name: metric, scale: axisType(means) === "logarithmic" ? "log" : "linear",
                        low, high, choices: null, metric: true};
    const axes = [...parameters, metricAxis];
    const format = (a) => a.metric ? (value) => metricText(value, metric)
                                   : (value) => valueText(a.name, value);
    const quality = (c) => high > low
      ? (direction === "maximize" ? c.mean - low : high - c.mean) / (high - low) : 1;
    const ordered = [...measured].sort((a, b) => quality(a) - quality(b));  // best on top
    const datasets = ordered.map((c) => ({
      label: paramsText(c.params), configuration: c, borderColor: shade(quality(c)),
      backgroundColor: shade(quality(c)), borderWidth: 1.5, pointRadius: 2, spanGaps: false,
      data: axes.map((a) => position(a, a.metric ? c.mean : (c.params || {})[a.name])),
    }));
    return new Chart(canvas, {
      type: "line",
      data: {labels: axes.map((a) => [a.name, rangeText(a, format(a))]), datasets},
      options: {
        animation: false, maintainAspectRatio: false,
        interaction: {mode: "nearest", intersect: false},
        scales: {
          x: {type: "category", ticks: {autoSkip: false}},
          y: {type: "linear", min: -0.1, max: 1.1,
              title: {display: true, text: "each axis from its lowest to its highest value"},
              afterBuildTicks: (scale) => { scale.ticks = [{value: 0}, {value: 1}]; },
              ticks: {callback: (value) => value === 0 ? "lowest" : value === 1 ? "highest" : ""}},
        },
        plugins: {
          legend: {display: false},
          tooltip: {callbacks: {
            title: (items) => items.length ? axes[items[0].dataIndex].name : "",
            label: (item) => {
              const c = item.dataset.configuration;
              const a = axes[item.dataIndex];
              const value = a.metric ? c.mean : (c.params || {})[a.name];
              return [a.name + " " + format(a)(value), ...configurationLines(c, metric)];
            },
          }},
        },
      },
    });
  }

  function drawOptimizer(found) {
    window.tunerCharts = {slices: []};
    if (typeof Chart === "undefined") return;
    const importanceCanvas = document.getElementById("importance-chart");
    if (importanceCanvas) {
      window.tunerCharts.importance = importanceChart(importanceCanvas, found.importance,
                                                      found.optimizer);
    }
    for (const canvas of document.querySelectorAll("canvas.slice-chart")) {
      const axis = found.parameters[Number(canvas.dataset.index)];
      window.tunerCharts.slices.push(sliceChart(canvas, axis, found.configurations,
                                                found.metric, found.direction, found.optimizer));
    }
    const parallelCanvas = document.getElementById("parallel-chart");
    if (parallelCanvas) {
      window.tunerCharts.parallel = parallelChart(parallelCanvas, found.parameters,
                                                  found.configurations, found.metric,
                                                  found.direction);
    }
  }

  // -- writes (only shown when the server has a token) -----------------------------------------

  async function send(method, url, token, body) {
    const response = await fetch(url, {
      method, body: body === undefined ? undefined : JSON.stringify(body),
      headers: {Authorization: "Bearer " + token, "Content-Type": "application/json"},
    });
    const answer = await response.json().catch(() => ({error: response.statusText}));
    return {ok: response.ok, answer};
  }

  function wireCreate() {
    const form = document.getElementById("create-form");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = new FormData(form);
      const body = {name: f.get("name"), task: f.get("task"), optimizers: f.get("optimizers"),
                    trials: Number(f.get("trials")), seeds: Number(f.get("seeds"))};
      if (f.get("budget")) body.budget = Number(f.get("budget"));
      const message = document.getElementById("create-message");
      message.textContent = "creating...";
      const {ok, answer} = await send("POST", "/api/studies", f.get("token"), body);
      message.textContent = ok
        ? "Created. Start it with: " + answer.commands.run + "   or on any host: " + answer.commands.worker
        : "Error: " + answer.error;
    });
  }

  function wireManage(name) {
    const form = document.getElementById("manage-form");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const action = event.submitter ? event.submitter.value : "stop";
      const token = new FormData(form).get("token");
      const message = document.getElementById("manage-message");
      const base = "/api/studies/" + encodeURIComponent(name);
      if (action === "delete" && !window.confirm("Delete this study with all its runs?")) return;
      const {ok, answer} = action === "delete" ? await send("DELETE", base, token)
                                                : await send("POST", base + "/stop", token);
      message.textContent = ok ? (action === "delete" ? "Deleted " + answer.runs + " runs."
                                                      : "Stopping: workers finish their trial and exit.")
                               : "Error: " + answer.error;
    });
  }

  function wireNote(name) {
    // Save the note with the token given beside it; the page shows the note as kept.
    const form = document.getElementById("note-form");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = new FormData(form);
      const message = document.getElementById("note-message");
      message.textContent = "saving...";
      const {ok, answer} = await send("PUT", "/api/studies/" + encodeURIComponent(name) + "/note",
                                      f.get("token"), {note: String(f.get("note"))});
      if (ok) showNote(answer.note);
      message.textContent = ok ? "Saved." : "Error: " + answer.error;
    });
  }

  // -- each page --------------------------------------------------------------------------------

  if (page === "home") {
    poll("/api/studies", (answer) => renderStudies(answer.studies), data.poll_seconds || 2);
    wireCreate();
  } else if (page === "study") {
    const name = data.study.name;
    window.tunerCharts = {};
    const historyCanvas = document.getElementById("history-chart");
    if (historyCanvas && typeof Chart !== "undefined") {
      window.tunerCharts.history = historyChart(historyCanvas, data.history || {},
                                                data.study.metric);
    }
    window.tunerTrials = trialsTable(name, data.study.metric, data.trials);
    if (!SETTLED.includes(data.study.status)) {
      poll("/api/studies/" + encodeURIComponent(name), renderStudy, data.poll_seconds || 2,
           studyGone);
    }
    wireManage(name);
    wireNote(name);
  } else if (page === "task" && data.ranking) {
    drawCharts(data.lr_points, data.curves, data.ranking.metric, data.ranking.direction,
               data.budget_curves);
  } else if (page === "compare") {
    drawCharts(data.lr_points, data.curves, data.metric, data.direction);
  } else if (page === "optimizer") {
    drawOptimizer(data);
  } else if (page === "trial") {
    const curves = {};
    curves[data.trial.optimizer] = data.trial.runs.map((run) => ({...run.curve, seed: run.seed}));
    drawCharts({}, curves, data.study.metric, data.study.direction);
  }
})();
