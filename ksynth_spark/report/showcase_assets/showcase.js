/*
 * ksynth-spark data showcase.
 *
 * Reads the JSON embedded in <script id="showcase-data"> (format described in
 * ksynth_spark/report/showcase.py) and builds an interactive explorer:
 *
 *   - one bar chart per column (or per multi-column "visual"), showing for each
 *     value v the synthetic estimate est(v) and the published count act(v);
 *   - clicking a bar toggles the attribute (column, value) in the selection
 *     (at most R - 1 attributes, so that selection + bar <= R attributes);
 *   - for a column col, bars are computed against (spec section 5.7)
 *         Sel' = Sel                          if (col, v) is selected
 *              = Sel minus selections in col  otherwise
 *     est(v) = number of synthetic records with every attribute of Sel' + (col, v)
 *     act(v) = published count of that combination if published, else blank.
 *
 * Every sentence and label comes from DATA.text (derived from what the release
 * did); this script makes no claim of its own.
 *
 * Estimates come from one of two embeddings that give the same numbers:
 *   - "records": the distinct synthetic records with their copies. Each
 *     attribute gets a sorted Uint32Array of the records holding it; a click
 *     intersects the selected attributes' arrays and sums the copies of the
 *     matching records per value, a few milliseconds;
 *   - "combinations": the synthetic count of every combination of up to R
 *     attributes, read straight from a Map.
 *
 * Plain DOM, no framework, no network access.
 */
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("showcase-data").textContent);
  const TEXT = DATA.text;

  /** Bars shown per chart before a "Show all" button. */
  const MAX_BARS = 25;
  const R = DATA.reporting_length;
  const MAX_SELECTIONS = Math.max(0, R - 1);
  const N = DATA.synthetic_record_count;
  const numberFormat = new Intl.NumberFormat("en-US");
  const fmt = (x) => numberFormat.format(x);
  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  /* ------------------------------------------------------------------ */
  /* Packed arrays, attributes and combination keys                      */
  /* ------------------------------------------------------------------ */

  /** Decode {bytes, data}: base64 of little-endian unsigned integers. */
  function unpack(packed) {
    const text = atob(packed.data);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const width = packed.bytes;
    if (width === 1) return bytes;
    const view = new DataView(bytes.buffer);
    const n = bytes.length / width;
    const out = width === 8 ? new Float64Array(n) : new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const at = i * width;
      out[i] = width === 2 ? view.getUint16(at, true)
        : width === 4 ? view.getUint32(at, true)
          : view.getUint32(at, true) + view.getUint32(at + 4, true) * 4294967296;
    }
    return out;
  }

  // Attribute id = column offset + value index (the ids of the embedded combinations).
  const attrColumn = []; // attribute id -> column index
  const attrValue = []; // attribute id -> value string
  const columns = DATA.columns.map((col, index) => {
    const offset = attrColumn.length;
    for (const value of col.values) {
      attrColumn.push(index);
      attrValue.push(value);
    }
    return { index, name: col.name, values: col.values, offset };
  });
  const A = attrColumn.length;

  // A combination's key: its ascending ids as one number when that is exact, else a string.
  const longest = Math.max(R, 1, ...DATA.combinations.map((b) => b.size));
  const NUMERIC_KEYS = Math.pow(A + 1, longest) < Number.MAX_SAFE_INTEGER;
  function keyAt(ids, at, size) {
    if (!NUMERIC_KEYS) return Array.prototype.slice.call(ids, at, at + size).join(",");
    let key = 0;
    for (let j = 0; j < size; j++) key = key * (A + 1) + ids[at + j] + 1;
    return key;
  }
  function keyOf(attrIds) {
    const sorted = attrIds.slice().sort((a, b) => a - b);
    return keyAt(sorted, 0, sorted.length);
  }

  // Published counts, and (combinations embedding) synthetic counts, by combination key.
  const actuals = new Map();
  const estimates = new Map();
  for (const block of DATA.combinations) {
    const size = block.size;
    const ids = unpack(block.ids);
    const acts = unpack(block.actuals);
    const ests = block.estimates ? unpack(block.estimates) : null;
    for (let i = 0; i < block.count; i++) {
      const key = keyAt(ids, i * size, size);
      if (acts[i] > 0) actuals.set(key, (acts[i] - 1) * block.unit);
      if (ests) estimates.set(key, ests[i]);
    }
  }
  DATA.combinations = null;

  /** Published count of a set of attribute ids, or undefined if not published. */
  function actualOf(attrIds) {
    if (attrIds.length === 0) return DATA.published_record_count ?? undefined;
    return actuals.get(keyOf(attrIds));
  }

  /* ------------------------------------------------------------------ */
  /* Estimates: from the distinct records or from the combinations       */
  /* ------------------------------------------------------------------ */

  /**
   * est.column(colIndex, base, cache) -> array e with e[i + 1] = estimate of
   * base + (value i of the column); est.of(attrIds, cache) -> estimate of attrIds.
   * `cache` lets columns sharing the same base reuse one intersection.
   */
  const est = DATA.embedding === "records" ? recordsEstimates(DATA.records) : combinationEstimates();
  DATA.records = null;

  function combinationEstimates() {
    return {
      column(colIndex, base) {
        const col = columns[colIndex];
        const out = new Float64Array(col.values.length + 1);
        for (let i = 0; i < col.values.length; i++) {
          out[i + 1] = estimates.get(keyOf(base.concat([col.offset + i]))) || 0;
        }
        return out;
      },
      of(attrIds) {
        return attrIds.length === 0 ? N : estimates.get(keyOf(attrIds)) || 0;
      },
    };
  }

  function recordsEstimates(records) {
    const n = records.count;
    const weights = unpack(records.weights);
    const attrRecords = []; // attribute id -> Uint32Array of record ids (sorted)
    const codes = []; // column -> code of each record (0 = empty, i + 1 = values[i])
    const totals = []; // column -> copies per code over all records
    columns.forEach((col, c) => {
      const colCodes = unpack(records.codes[c]);
      const nValues = col.values.length;
      // Counting sort of the records by code gives every value's record list.
      const counts = new Int32Array(nValues + 1);
      const total = new Float64Array(nValues + 1);
      for (let r = 0; r < n; r++) {
        counts[colCodes[r]]++;
        total[colCodes[r]] += weights[r];
      }
      const starts = new Int32Array(nValues + 2);
      for (let v = 0; v <= nValues; v++) starts[v + 1] = starts[v] + counts[v];
      const sorted = new Uint32Array(n);
      const fill = starts.slice(0, nValues + 1);
      for (let r = 0; r < n; r++) sorted[fill[colCodes[r]]++] = r;
      for (let i = 0; i < nValues; i++) attrRecords.push(sorted.subarray(starts[i + 1], starts[i + 2]));
      codes.push(colCodes);
      totals.push(total);
    });

    // Lazily built bitsets of single attributes, for fast membership tests.
    const bitsetCache = new Map();
    function bitsetOf(attr) {
      let bits = bitsetCache.get(attr);
      if (!bits) {
        bits = new Uint32Array((n + 31) >>> 5);
        for (const r of attrRecords[attr]) bits[r >>> 5] |= 1 << (r & 31);
        bitsetCache.set(attr, bits);
      }
      return bits;
    }

    /** Records holding every attribute in attrIds (attrIds not empty). */
    function matching(attrIds, cache) {
      const key = "m:" + attrIds.slice().sort((a, b) => a - b).join(",");
      if (cache.has(key)) return cache.get(key);
      const bySize = attrIds.slice().sort((a, b) => attrRecords[a].length - attrRecords[b].length);
      let result = attrRecords[bySize[0]];
      for (let j = 1; j < bySize.length && result.length > 0; j++) {
        const bits = bitsetOf(bySize[j]);
        result = result.filter((r) => (bits[r >>> 5] >>> (r & 31)) & 1);
      }
      cache.set(key, result);
      return result;
    }

    return {
      column(colIndex, base, cache) {
        if (base.length === 0) return totals[colIndex];
        const colCodes = codes[colIndex];
        const out = new Float64Array(columns[colIndex].values.length + 1);
        const rows = matching(base, cache);
        for (let j = 0; j < rows.length; j++) out[colCodes[rows[j]]] += weights[rows[j]];
        return out;
      },
      of(attrIds, cache) {
        if (attrIds.length === 0) return N;
        let sum = 0;
        for (const r of matching(attrIds, cache)) sum += weights[r];
        return sum;
      },
    };
  }

  /* ------------------------------------------------------------------ */
  /* Selection state and the est/act computation                        */
  /* ------------------------------------------------------------------ */

  let selection = []; // attribute ids, in the order they were selected

  /** est/act of every value of a column under the current selection. */
  function columnStats(colIndex, cache) {
    const col = columns[colIndex];
    const base = selection.filter((a) => attrColumn[a] !== colIndex); // Sel minus col
    const counts = est.column(colIndex, base, cache);
    const stats = [];
    for (let i = 0; i < col.values.length; i++) {
      const attr = col.offset + i;
      let e;
      let act;
      if (selection.includes(attr)) {
        // (col, v) is selected: Sel' = Sel, and Sel' + (col, v) = Sel.
        e = est.of(selection, cache);
        act = actualOf(selection);
      } else {
        e = counts[i + 1];
        act = actualOf(base.concat([attr]));
      }
      stats.push({ attr, column: col.name, value: col.values[i], est: e, act });
    }
    return stats;
  }

  /* ------------------------------------------------------------------ */
  /* DOM helpers                                                         */
  /* ------------------------------------------------------------------ */

  /** Create an element with attributes/properties and children. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "className") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" ||
               key === "title" || key === "tabindex" || key === "type") node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) {
      if (child !== null && child !== undefined) {
        node.append(child);
      }
    }
    return node;
  }

  /* ------------------------------------------------------------------ */
  /* Static parts: statement, facts, tabs                                */
  /* ------------------------------------------------------------------ */

  function renderHeader() {
    const statement = document.getElementById("privacy-statement");
    document.getElementById("privacy-headline").textContent = TEXT.headline;
    document.getElementById("privacy-details").textContent = TEXT.details.join(" ");
    statement.classList.toggle("warning", Boolean(TEXT.warning));

    const facts = document.getElementById("facts");
    for (const [name, value, note] of DATA.facts) {
      const shown = value === null ? "\u2013" : typeof value === "number" ? fmt(value) : String(value);
      facts.append(el("div", { className: "fact", "data-fact": name },
        el("div", { className: "fact-value", text: shown }),
        el("div", { className: "fact-name", text: name }),
        note ? el("div", { className: "fact-note", text: note }) : null));
    }

    const list = document.getElementById("how-to-read-list");
    for (const [question, answer] of TEXT.how_to_read) {
      list.append(el("dt", { text: question }), el("dd", { text: answer }));
    }
    document.getElementById("legend-estimate").textContent = TEXT.estimate_label;
    document.getElementById("legend-actual").textContent = TEXT.actual_label;
    document.getElementById("legend-missing").textContent = TEXT.missing_note;
  }

  function setupViewTabs() {
    const tabs = document.querySelectorAll(".view-tabs [role=tab]");
    for (const tab of tabs) {
      tab.addEventListener("click", () => {
        for (const other of tabs) {
          const active = other === tab;
          other.setAttribute("aria-selected", String(active));
          document.getElementById("view-" + other.dataset.view).hidden = !active;
        }
      });
    }
  }

  let currentPage = 0;

  function renderPageTabs() {
    const nav = document.getElementById("page-tabs");
    nav.replaceChildren();
    nav.hidden = DATA.pages.length < 2;
    DATA.pages.forEach((page, i) => {
      const button = el("button", {
        type: "button", role: "tab", className: "page-tab", text: page.name,
        "data-page": page.name, "aria-selected": String(i === currentPage),
      });
      button.addEventListener("click", () => {
        currentPage = i;
        renderPageTabs();
        renderCharts();
      });
      nav.append(button);
    });
  }

  /* ------------------------------------------------------------------ */
  /* Charts                                                              */
  /* ------------------------------------------------------------------ */

  const expandedCharts = new Set(); // chart keys showing all their bars

  /** One chart: a column, or a visual whose bars come from several columns. */
  function chartBars(item, cache) {
    if (item.type === "column") {
      return columnStats(item.column, cache).map((s) => ({ ...s, label: s.value }));
    }
    const bars = [];
    item.columns.forEach((colIndex, j) => {
      const col = columns[colIndex];
      const binary = col.values.length === 1 && col.values[0] === "1";
      for (const s of columnStats(colIndex, cache)) {
        bars.push({ ...s, label: binary ? item.labels[j] : `${item.labels[j]}: ${s.value}` });
      }
    });
    return bars;
  }

  function renderCharts() {
    const container = document.getElementById("charts");
    const cache = new Map();
    const page = DATA.pages[currentPage];
    const cards = [];
    if (!page) {
      container.replaceChildren(el("p", { className: "empty", text: "The synthetic data has no columns." }));
      return;
    }
    for (const item of page.items) {
      const key = item.type === "column" ? "c:" + columns[item.column].name : "v:" + item.name;
      const title = item.type === "column" ? columns[item.column].name : item.name;
      const bars = chartBars(item, cache)
        .filter((b) => b.est > 0)
        .sort((a, b) => b.est - a.est || a.label.localeCompare(b.label, "en", { numeric: true }));
      cards.push(renderChart(key, title, item, bars));
    }
    container.replaceChildren(...cards);
  }

  function renderChart(key, title, item, bars) {
    const scale = Math.max(1, ...bars.map((b) => Math.max(b.est, b.act ?? 0)));
    const expanded = expandedCharts.has(key);
    const shown = expanded ? bars : bars.slice(0, MAX_BARS);
    const subtitle = item.type === "visual"
      ? `${item.columns.length} columns combined`
      : `${columns[item.column].values.length} values`;

    const body = el("div", { className: "bars" },
      el("div", { className: "bar-head", "aria-hidden": "true" },
        el("span", { text: item.type === "visual" ? "Piece" : "Value" }),
        el("span"),
        el("span", { className: "bar-numbers" },
          el("span", { text: "Estimate" }), el("span", { text: TEXT.actual_short }))));
    if (bars.length === 0) {
      body.append(el("p", { className: "empty", text: "No synthetic records match the current selection." }));
    }
    for (const bar of shown) body.append(renderBar(bar, scale));

    const card = el("section", {
      className: "chart", "data-chart": key,
      "data-chart-type": item.type, "aria-label": title,
    },
    el("header", { className: "chart-header" },
      el("h3", { className: "chart-title", text: title, title }),
      el("span", { className: "chart-subtitle", text: subtitle })),
    body);

    if (bars.length > MAX_BARS) {
      card.append(el("button", {
        type: "button", className: "show-all", "data-chart-key": key,
        text: expanded ? "Show fewer values" : `Show all ${bars.length} values`,
      }));
    }
    return card;
  }

  function renderBar(bar, scale) {
    const selected = selection.includes(bar.attr);
    const reportedActual = bar.act !== undefined;
    const estPct = (100 * bar.est) / scale;
    const actPct = reportedActual ? (100 * bar.act) / scale : 0;
    const tooltip = `${bar.column} = ${bar.value}\n${TEXT.estimate_label}: ${fmt(bar.est)}\n` +
      `${TEXT.actual_label}: ${reportedActual ? fmt(bar.act) : "not published"}`;

    const estimateBar = el("span", { className: "bar-estimate" });
    estimateBar.style.width = estPct + "%";
    const actualBar = el("span", { className: "bar-actual" + (reportedActual ? "" : " not-reported") });
    actualBar.style.width = actPct + "%";
    const track = el("span", { className: "bar-track" }, estimateBar, actualBar);

    return el("div", {
      className: "bar-row" + (selected ? " selected" : ""),
      role: "button", tabindex: "0", title: tooltip,
      "aria-pressed": String(selected),
      "data-attr": String(bar.attr),
      "data-column": bar.column,
      "data-value": bar.value,
      "data-estimate": String(bar.est),
      "data-actual": reportedActual ? String(bar.act) : "",
    },
    el("span", { className: "bar-label", text: bar.label }),
    track,
    el("span", { className: "bar-numbers" },
      el("span", { className: "num-estimate", text: fmt(bar.est) }),
      el("span", {
        className: "num-actual" + (reportedActual ? "" : " not-reported"),
        text: reportedActual ? fmt(bar.act) : "\u2013",
      })));
  }

  /* ------------------------------------------------------------------ */
  /* Selection panel                                                     */
  /* ------------------------------------------------------------------ */

  function showMessage(text) {
    const message = document.getElementById("selection-message");
    message.textContent = text || "";
    message.hidden = !text;
  }

  function renderSelection() {
    const list = document.getElementById("selection-list");
    list.replaceChildren();
    if (selection.length === 0) {
      list.append(el("li", { className: "selection-empty", text: "Nothing selected \u2013 click a bar to select a value" }));
    }
    for (const attr of selection) {
      const column = columns[attrColumn[attr]].name;
      const remove = el("button", {
        type: "button", className: "chip-remove", "data-attr": String(attr),
        "aria-label": `Remove ${column} = ${attrValue[attr]}`, text: "\u00d7",
      });
      list.append(el("li", {
        className: "chip", "data-column": column, "data-value": attrValue[attr],
      }, el("span", { className: "chip-column", text: column + ":" }),
      el("span", { className: "chip-value", text: attrValue[attr] }), remove));
    }
    document.getElementById("clear-selection").disabled = selection.length === 0;

    const summary = document.getElementById("selection-summary");
    const e = est.of(selection, new Map());
    const act = actualOf(selection);
    const countName = TEXT.count_name.charAt(0).toUpperCase() + TEXT.count_name.slice(1);
    summary.replaceChildren(
      el("span", { text: selection.length ? "Matching the selection: " : "All records: " }),
      el("strong", { className: "summary-estimate", text: fmt(e) }),
      el("span", { text: ` synthetic record${e === 1 ? "" : "s"} \u00b7 ${countName}: ` }),
      el("strong", { className: "summary-actual", text: act === undefined ? "not published" : fmt(act) }),
      el("span", { className: "selection-capacity", text: ` \u00b7 ${selection.length} of ${MAX_SELECTIONS} selections used` }));
  }

  function update() {
    renderSelection();
    renderCharts();
  }

  /** Toggle one attribute; refuses (with a message) beyond R - 1 selections. */
  function toggle(attr) {
    const at = selection.indexOf(attr);
    if (at >= 0) {
      selection.splice(at, 1);
    } else if (selection.length >= MAX_SELECTIONS) {
      showMessage(MAX_SELECTIONS === 0
        ? `Values cannot be selected here: ${TEXT.count_name}s exist only for single values (R = ${R}).`
        : `At most ${plural(MAX_SELECTIONS, "value")} can be selected: ${TEXT.count_name}s exist only for ` +
          `combinations of up to R = ${R} values (the selection plus one bar). ` +
          `Remove a selection to choose another value.`);
      return;
    } else {
      selection.push(attr);
    }
    showMessage("");
    update();
  }

  function setupInteraction() {
    const charts = document.getElementById("charts");
    charts.addEventListener("click", (event) => {
      const more = event.target.closest(".show-all");
      if (more) {
        const key = more.dataset.chartKey;
        if (expandedCharts.has(key)) expandedCharts.delete(key); else expandedCharts.add(key);
        renderCharts();
        return;
      }
      const row = event.target.closest(".bar-row");
      if (row) toggle(Number(row.dataset.attr));
    });
    charts.addEventListener("keydown", (event) => {
      const row = event.target.closest(".bar-row");
      if (row && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        const attr = Number(row.dataset.attr);
        toggle(attr);
        const again = charts.querySelector(`.bar-row[data-attr="${attr}"]`);
        if (again) again.focus();
      }
    });
    document.getElementById("selection-list").addEventListener("click", (event) => {
      const remove = event.target.closest(".chip-remove");
      if (remove) toggle(Number(remove.dataset.attr));
    });
    document.getElementById("clear-selection").addEventListener("click", () => {
      selection = [];
      showMessage("");
      update();
    });
  }

  /* ------------------------------------------------------------------ */
  /* Evaluation view                                                     */
  /* ------------------------------------------------------------------ */

  function renderEvaluation() {
    const target = document.getElementById("evaluation");
    const evaluation = DATA.evaluation;
    if (!evaluation) {
      target.append(el("p", { className: "empty evaluation-note", text: TEXT.evaluation_note || "" }));
      return;
    }
    if (evaluation.metrics.length) {
      const rows = evaluation.metrics.map(([name, value]) =>
        el("tr", {}, el("th", { scope: "row", text: name }), el("td", { text: value })));
      target.append(el("h2", { text: "Metrics" }),
        el("table", { className: "metrics" }, el("tbody", {}, ...rows)));
    }
    if (evaluation.charts.length) {
      target.append(el("h2", { text: "Charts" }));
      const grid = el("div", { className: "evaluation-charts" });
      for (const [caption, svg] of evaluation.charts) {
        const holder = el("div", { className: "svg-holder" });
        holder.innerHTML = svg; // matplotlib SVG, cleaned by the renderer
        grid.append(el("figure", { className: "evaluation-chart" }, holder,
          el("figcaption", { text: caption })));
      }
      target.append(grid);
    }
    if (!evaluation.metrics.length && !evaluation.charts.length) {
      target.append(el("p", { className: "empty", text: "The evaluation produced no metrics or charts." }));
    }
  }

  /* ------------------------------------------------------------------ */
  /* Start                                                               */
  /* ------------------------------------------------------------------ */

  renderHeader();
  setupViewTabs();
  renderPageTabs();
  setupInteraction();
  renderEvaluation();
  update();
  document.body.dataset.embedding = DATA.embedding;
  document.body.dataset.ready = "true";
})();
