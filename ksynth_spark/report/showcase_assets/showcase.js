/*
 * ksynth-spark data showcase.
 *
 * Reads the JSON embedded in <script id="showcase-data"> (format described in
 * ksynth_spark/showcase.py) and builds an interactive explorer:
 *
 *   - one bar chart per column (or per multi-column "visual"), showing for each
 *     value v the synthetic estimate est(v) and the protected actual count act(v);
 *   - clicking a bar toggles the attribute (column, value) in the selection
 *     (at most R - 1 attributes, so that selection + bar <= R attributes);
 *   - for a column col, bars are computed against
 *         Sel' = Sel                          if (col, v) is selected
 *              = Sel minus selections in col  otherwise
 *     est(v) = number of synthetic records with every attribute of Sel' + (col, v)
 *     act(v) = protected count of that combination if reported, else blank.
 *
 * Performance: each attribute (column value) gets a sorted Uint32Array of the
 * records holding it, computed once. A click intersects the few selected
 * attributes' arrays and tallies the codes of the matching records per column,
 * so a click costs O(records x columns) at worst, a few milliseconds.
 *
 * Plain DOM, no framework, no network access.
 */
"use strict";

(function () {
  const DATA = JSON.parse(document.getElementById("showcase-data").textContent);

  /** Bars shown per chart before a "Show all" button. */
  const MAX_BARS = 25;
  const R = DATA.reporting_length;
  const K = DATA.k;
  const MAX_SELECTIONS = Math.max(0, R - 1);
  const N = DATA.record_count;
  const numberFormat = new Intl.NumberFormat("en-US");
  const fmt = (x) => numberFormat.format(x);

  /* ------------------------------------------------------------------ */
  /* Data model: columns, attributes and per-attribute record indexes    */
  /* ------------------------------------------------------------------ */

  // Attribute id = column offset + value index (the same ids the Python
  // renderer used to encode the reportable combinations).
  const attrColumn = []; // attribute id -> column index
  const attrValue = []; // attribute id -> value string
  const attrRecords = []; // attribute id -> Uint32Array of record ids (sorted)

  // Per-record codes arrive as base64 of little-endian unsigned integers (1, 2 or 4 bytes).
  function decodeCodes(col) {
    const text = atob(col.codes);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const view = new DataView(bytes.buffer);
    const out = new Int32Array(bytes.length / col.code_bytes);
    for (let r = 0; r < out.length; r++) {
      const at = r * col.code_bytes;
      out[r] = col.code_bytes === 1 ? bytes[at] : col.code_bytes === 2 ? view.getUint16(at, true) : view.getUint32(at, true);
    }
    return out;
  }

  const columns = DATA.columns.map((col, index) => {
    const offset = attrColumn.length;
    const nValues = col.values.length;
    const codes = decodeCodes(col); // 0 = empty, i + 1 = values[i]
    // Counting sort of the records by code gives every value's record list.
    const counts = new Int32Array(nValues + 1);
    for (let r = 0; r < N; r++) counts[codes[r]]++;
    const starts = new Int32Array(nValues + 2);
    for (let c = 0; c <= nValues; c++) starts[c + 1] = starts[c] + counts[c];
    const sorted = new Uint32Array(N);
    const fill = starts.slice(0, nValues + 1);
    for (let r = 0; r < N; r++) sorted[fill[codes[r]]++] = r;
    for (let i = 0; i < nValues; i++) {
      attrColumn.push(index);
      attrValue.push(col.values[i]);
      attrRecords.push(sorted.subarray(starts[i + 1], starts[i + 2]));
    }
    col.codes = null; // drop the base64 text, keep the typed array
    return { index, name: col.name, values: col.values, offset, codes, counts };
  });

  // Reportable combinations: key = sorted attribute ids joined by ",".
  const reported = new Map();
  for (const block of DATA.reportable) {
    const size = block.size;
    const flat = block.data;
    for (let i = 0; i < flat.length; i += size + 1) {
      reported.set(flat.slice(i, i + size).join(","), flat[i + size] * block.unit);
    }
  }

  /** Protected count of a set of attribute ids, or undefined if not reported. */
  function actualOf(attrIds) {
    if (attrIds.length === 0) return DATA.protected_record_count ?? undefined;
    const key = attrIds.slice().sort((a, b) => a - b).join(",");
    return reported.get(key);
  }

  // Lazily built bitsets of single attributes, for fast membership tests.
  const bitsetCache = new Map();
  function bitsetOf(attr) {
    let bits = bitsetCache.get(attr);
    if (!bits) {
      bits = new Uint32Array((N + 31) >>> 5);
      for (const r of attrRecords[attr]) bits[r >>> 5] |= 1 << (r & 31);
      bitsetCache.set(attr, bits);
    }
    return bits;
  }

  /** Records holding every attribute in attrIds (null = all records). */
  function recordsMatching(attrIds) {
    if (attrIds.length === 0) return null;
    const bySize = attrIds.slice().sort((a, b) => attrRecords[a].length - attrRecords[b].length);
    let result = attrRecords[bySize[0]];
    for (let j = 1; j < bySize.length && result.length > 0; j++) {
      const bits = bitsetOf(bySize[j]);
      result = result.filter((r) => (bits[r >>> 5] >>> (r & 31)) & 1);
    }
    return result;
  }

  /* ------------------------------------------------------------------ */
  /* Selection state and the est/act computation                        */
  /* ------------------------------------------------------------------ */

  let selection = []; // attribute ids, in the order they were selected

  /**
   * Compute est/act for every value of the given column under the current
   * selection. `cache` maps a base selection key to its matching records, so
   * columns sharing the same Sel' reuse one intersection.
   */
  function columnStats(colIndex, cache) {
    const col = columns[colIndex];
    const base = selection.filter((a) => attrColumn[a] !== colIndex); // Sel minus col
    const baseKey = base.join(",");
    if (!cache.has(baseKey)) cache.set(baseKey, recordsMatching(base));
    const records = cache.get(baseKey);

    let counts = col.counts;
    if (records !== null) {
      counts = new Int32Array(col.values.length + 1);
      const codes = col.codes;
      for (let j = 0; j < records.length; j++) counts[codes[records[j]]]++;
    }
    const stats = [];
    for (let i = 0; i < col.values.length; i++) {
      const attr = col.offset + i;
      let est;
      let act;
      if (selection.includes(attr)) {
        // (col, v) is selected: Sel' = Sel, and Sel' + (col, v) = Sel.
        est = selectionEstimate(cache);
        act = actualOf(selection);
      } else {
        est = counts[i + 1];
        act = actualOf(base.concat([attr]));
      }
      stats.push({ attr, column: col.name, value: col.values[i], est, act });
    }
    return stats;
  }

  /** Number of synthetic records matching the whole selection. */
  function selectionEstimate(cache) {
    const key = "all:" + selection.join(",");
    if (!cache.has(key)) cache.set(key, recordsMatching(selection));
    const records = cache.get(key);
    return records === null ? N : records.length;
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
    document.getElementById("privacy-statement").textContent =
      `Every combination of attributes in this synthetic dataset describes a group of at least ` +
      `k = ${K} individuals in the sensitive data. Actual counts are rounded down to a multiple ` +
      `of ${K}; combinations of more than ${R} attribute${R === 1 ? "" : "s"} or fewer than ` +
      `${K} individuals are not reported.`;

    const facts = document.getElementById("facts");
    for (const [name, value] of DATA.facts) {
      const shown = typeof value === "number" ? fmt(value) : String(value);
      facts.append(el("div", { className: "fact", "data-fact": name },
        el("div", { className: "fact-value", text: shown }),
        el("div", { className: "fact-name", text: name })));
    }
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
          el("span", { text: "Estimate" }), el("span", { text: "Actual" }))));
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
    const tooltip = `${bar.column} = ${bar.value}\nSynthetic estimate: ${fmt(bar.est)}\n` +
      `Protected actual count: ${reportedActual ? fmt(bar.act) : "not reported"}`;

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
    const est = selection.length ? selectionEstimate(new Map()) : N;
    const act = actualOf(selection);
    summary.replaceChildren(
      el("span", { text: selection.length ? "Matching the selection: " : "All records: " }),
      el("strong", { className: "summary-estimate", text: fmt(est) }),
      el("span", { text: " synthetic \u00b7 " }),
      el("strong", { className: "summary-actual", text: act === undefined ? "not reported" : fmt(act) }),
      el("span", { text: act === undefined ? " actual" : " actual (protected)" }),
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
        ? `Values cannot be selected here: actual counts only exist for single attributes (R = ${R}).`
        : `At most ${MAX_SELECTIONS} value${MAX_SELECTIONS === 1 ? "" : "s"} can be selected: ` +
          `actual counts only exist for combinations of up to R = ${R} attributes ` +
          `(the selection plus one bar). Remove a selection to choose another value.`);
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
      target.append(el("p", { className: "empty evaluation-none", text: "No evaluation was run for this release." }));
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
  document.body.dataset.ready = "true";
})();
