// twograd's backprop explorer: steps through forward and backward of one recorded graph.
//
// The Python side (viz/explore/) decided everything shown here and put it in the page as JSON
// (<script class="tg-data">): the nodes and their numbers, the steps with their arithmetic, the
// groups, and for every picture ("view") the boxes, the edge paths laid out by Graphviz's dot,
// and where each node and edge of the graph is drawn. This file only keeps the step counter,
// applies or undoes steps, and draws. Plain DOM, no library, no network.
//
// State after k steps (steps 0..k-1 applied):
//   shown[i]   node i has its data (a leaf always; an op node after its forward step)
//   grad[i]    node i's grad so far, or null before any backward step has reached it
//   touches[i] how many applied steps set grad[i] (undoing the last one makes it null again)
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var made = 0; // explorers initialised in this document: each gets its own arrowhead id
  var PLAY_MS = 350; // one step per PLAY_MS while playing
  // The picture's boxes and edges sit in <g> chunks of CHUNK: when a box's text changes, the browser
  // recomputes the bounds of its chunk and of the chunks' parent, not a union over all 6,000 shapes of a
  // 3,000-box picture (that union made a step's layout cost grow with the picture).
  var CHUNK = 48;
  var MAX_ZOOM = 2.5, ZOOM_STEP = 1.25; // a small picture grows to fit the panel up to MAX_ZOOM; +/- zoom by ZOOM_STEP

  // Numbers as the Python side sends them: a float, or "nan" / "inf" / "-inf" as strings.
  function num(x) { return typeof x === "number" ? x : Number(x === "nan" ? NaN : x.replace("inf", "Infinity")); }
  // Six significant digits, like Python's format(x, ".6g") on the Python side.
  function fmt(x) {
    if (x === null || x === undefined) return "\u00b7";
    if (!isFinite(x)) return String(x);
    if (x === 0) return "0";
    var s = x.toPrecision(6);
    if (s.indexOf("e") >= 0) return s.replace(/\.?0+e/, "e");
    return s.indexOf(".") >= 0 ? s.replace(/\.?0+$/, "") : s;
  }
  function el(tag, attrs, text, ns) {
    var e = ns ? document.createElementNS(SVG, tag) : document.createElement(tag);
    for (var k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function init(root) {
    root.setAttribute("data-ready", "1");
    var arrowId = "tg-arrow-" + (made += 1) + "-" + Math.floor(Math.random() * 1e9);
    var data = JSON.parse(root.querySelector(".tg-data").textContent);
    var nodes = data.nodes, steps = data.steps, edges = data.edges, n = steps.length;
    var k = 0, view = 0, timer = null, picked = null;
    var shown = nodes.map(function (nd) { return nd.k !== "op"; });
    var grad = nodes.map(function () { return null; });
    var touches = nodes.map(function () { return 0; });
    var groupOf = nodes.map(function () { return -1; }); // node -> its group (or -1)
    data.groups.forEach(function (g, gi) { g.members.forEach(function (i) { groupOf[i] = gi; }); });
    var edgeBetween = {}; // "parent,child" -> graph edge ids (for colouring explain's paths)
    edges.forEach(function (e, id) { (edgeBetween[e[0] + "," + e[1]] = edgeBetween[e[0] + "," + e[1]] || []).push(id); });

    // ------------------------------------------------------------------ the page's skeleton
    root.appendChild(el("h2", { "class": "tg-title" }, data.title));
    var bar = el("div", { "class": "tg-controls" });
    function button(name, text, title, action) {
      var b = el("button", { "class": "tg-" + name, title: title, type: "button" }, text);
      b.addEventListener("click", action);
      bar.appendChild(b);
      return b;
    }
    button("start", "|\u25c0 start", "back to the start (Home)", function () { goTo(0); });
    button("prev", "\u25c0 prev", "previous step (left arrow)", function () { goTo(k - 1); });
    var play = button("play", "\u25b6 play", "play / pause (space)", function () { toggle(); });
    button("next", "next \u25b6", "next step (right arrow)", function () { goTo(k + 1); });
    button("end", "end \u25b6|", "jump to the end (End)", function () { goTo(n); });
    var slider = el("input", { type: "range", min: "0", max: String(n), value: "0", "class": "tg-slider" });
    slider.addEventListener("input", function () { goTo(Number(slider.value)); });
    bar.appendChild(slider);
    var counter = el("span", { "class": "tg-counter" });
    bar.appendChild(counter);
    button("zoom-out", "\u2212", "zoom out", function () { setZoom(zoom / ZOOM_STEP); });
    button("fit", "fit", "fit the picture to the panel", function () { setZoom(fitZoom()); });
    button("zoom-in", "+", "zoom in", function () { setZoom(zoom * ZOOM_STEP); });
    root.appendChild(bar);
    var crumb = el("div", { "class": "tg-crumb" });
    root.appendChild(crumb);
    var main = el("div", { "class": "tg-main" });
    var canvas = el("div", { "class": "tg-canvas" });
    var panel = el("div", { "class": "tg-panel" });
    main.appendChild(canvas);
    main.appendChild(panel);
    root.appendChild(main);
    var stepBox = el("div", { "class": "tg-step" }), formulaBox = el("div", { "class": "tg-formula" });
    var pickBox = el("div", { "class": "tg-pick" }), legendBox = el("div", { "class": "tg-legend" });
    var keyBox = el("div", { "class": "tg-key" });
    [stepBox, formulaBox, pickBox, legendBox, keyBox].forEach(function (b) { panel.appendChild(b); });
    // What the boxes' colours and marks mean (the comparison's colours have their own legend above).
    keyBox.appendChild(el("b", {}, "key"));
    [["tg-key-input", "an input: a labelled leaf"], ["tg-key-op", "computed (its forward step has run)"],
     ["tg-key-todo", "not computed yet: data ?"], ["tg-key-const", "a constant, drawn once per use"],
     ["tg-key-group", "a folded group: click to open"], ["tg-key-cur", "the current step"]].forEach(function (r) {
      var row = el("div", { "class": "tg-legend-row" });
      row.appendChild(el("span", { "class": "tg-swatch " + r[0] }));
      row.appendChild(el("span", {}, " " + r[1]));
      keyBox.appendChild(row);
    });
    keyBox.appendChild(el("div", {}, "grad \u00b7 : backward has not reached the node yet"));
    if (data.layoutError) root.insertBefore(el("div", { "class": "tg-note" }, data.layoutError), main);

    // ------------------------------------------------------------------ drawing a view
    var units = {}; // key -> {el, name, data, grad}: the box (or table row) of one unit in this view
    var lines = []; // drawn edge index -> its path element
    var lit = [];   // table rows carrying the "current step" class
    var overlay = null; // the picture's highlight layer: the current step's boxes and edges, drawn over it
    var pool = { path: [], rect: [] }; // its shapes, reused from step to step (no garbage per step)
    var stepRows = []; // without a picture: step index -> its row in the step table
    var svgs = [], zoom = 1; // the picture and its highlight layer, drawn at `zoom` times dot's size

    function openView(v) {
      view = v;
      units = {}; lines = []; lit = []; stepRows = []; overlay = null; pool = { path: [], rect: [] }; svgs = [];
      canvas.textContent = "";
      var vw = data.views[v];
      crumb.textContent = "";
      if (v > 0) {
        var back = el("button", { "class": "tg-back", type: "button" }, "\u2190 all");
        back.addEventListener("click", function () { openView(0); });
        crumb.appendChild(back);
        var g = data.groups[v - 1];
        crumb.appendChild(el("span", {}, " group " + g.name + ": " + g.members.length + " nodes, " +
          g.inputs.length + " inputs, " + g.outputs.length + " outputs"));
      } else if (data.groups.length) {
        crumb.appendChild(el("span", {}, data.groups.length + " groups folded; click a box to open it"));
      }
      if (vw.error) {
        canvas.appendChild(el("div", { "class": "tg-note" }, vw.error));
        drawTable(vw);
      } else {
        drawSvg(vw);
      }
      root.setAttribute("data-view", String(v));
      paintCompare();
      for (var i = 0; i < nodes.length; i++) drawNode(i);
      drawGroups();
      showCurrent(false);
      if (picked !== null) pick(picked);
    }

    function drawSvg(vw) {
      var svg = el("svg", { width: vw.w + 8, height: vw.h + 8, viewBox: "-4 -4 " + (vw.w + 8) + " " + (vw.h + 8), "class": "tg-svg" }, undefined, true);
      svg.appendChild(el("defs", {}, undefined, true)).appendChild(markerEl());
      var chunk = null, edgeLayer = svg.appendChild(el("g", {}, undefined, true));
      vw.edges.forEach(function (e, idx) {
        var p = el("path", { d: e.d, "class": "tg-edge", "marker-end": "url(#" + arrowId + ")" }, undefined, true);
        if (e.ids.length > 1) p.appendChild(el("title", {}, e.ids.length + " edges", true));
        if (idx % CHUNK === 0) chunk = edgeLayer.appendChild(el("g", {}, undefined, true));
        chunk.appendChild(p);
        lines[idx] = p;
      });
      var unitLayer = svg.appendChild(el("g", {}, undefined, true));
      vw.units.forEach(function (u, idx) {
        if (idx % CHUNK === 0) chunk = unitLayer.appendChild(el("g", {}, undefined, true));
        var g = el("g", { "class": "tg-unit tg-" + u.kind, "data-key": u.key }, undefined, true);
        g.appendChild(el("rect", { x: u.x, y: u.y, width: u.w, height: u.h, rx: u.kind === "group" ? 8 : 3 }, undefined, true));
        // a folded group holding compared nodes has a fourth line: how many of them disagree
        var rows = u.kind === "const" ? 1 : u.kind === "group" && data.compare && data.compare.groups[u.ref] ? 4 : 3, texts = [];
        for (var r = 0; r < rows; r++) {
          var t = el("text", { x: u.x + u.w / 2, y: u.y + (r + 1) * u.h / (rows + 1) + 4, "class": "tg-t" + r }, "", true);
          g.appendChild(t);
          texts.push(t);
        }
        if (u.kind !== "group") g.setAttribute("data-node", String(u.ref));
        if (u.kind !== "group" && nodes[u.ref].s) g.appendChild(el("title", {}, nodes[u.ref].s + " = " + nodes[u.ref].n + " (its name in the steps)", true));
        g.addEventListener("click", function (ev) { ev.stopPropagation(); clicked(u); });
        chunk.appendChild(g);
        units[u.key] = { el: g, texts: texts, unit: u };
      });
      svg.addEventListener("click", function () { pick(null); });
      // The current step is drawn on a second, transparent SVG stacked over the picture, its own
      // compositing layer: a step then repaints a few shapes there instead of the picture's region
      // under a long highlighted edge (the picture itself only changes where a number changes).
      var stack = el("div", { "class": "tg-stack" });
      overlay = el("svg", { width: vw.w + 8, height: vw.h + 8, viewBox: svg.getAttribute("viewBox"), "class": "tg-overlay" }, undefined, true);
      stack.appendChild(svg);
      stack.appendChild(overlay);
      canvas.appendChild(stack);
      svgs = [svg, overlay];
      // Opened at the size that fills the panel, if that is bigger than dot's (a big picture keeps dot's
      // size, readable, and scrolls; "fit" shrinks it to the panel).
      setZoom(Math.min(MAX_ZOOM, Math.max(1, fitZoom())));
    }

    // The zoom at which the whole picture fits the panel (the canvas is at most 75% of the window high).
    function fitZoom() {
      var vw = data.views[view];
      if (!svgs.length) return 1;
      var cw = canvas.clientWidth - 2, ch = Math.max(200, 0.75 * window.innerHeight - 2);
      return Math.max(0.05, Math.min(cw / (vw.w + 8), ch / (vw.h + 8)));
    }
    function setZoom(z) {
      zoom = z;
      var vw = data.views[view];
      svgs.forEach(function (s) { s.setAttribute("width", (vw.w + 8) * z); s.setAttribute("height", (vw.h + 8) * z); });
      root.setAttribute("data-zoom", z.toFixed(3));
    }

    function markerEl() {
      var m = el("marker", { id: arrowId, viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "7", markerHeight: "7", markerUnits: "userSpaceOnUse", orient: "auto" }, undefined, true);
      m.appendChild(el("path", { d: "M0,0L10,5L0,10z", "class": "tg-arrowhead" }, undefined, true));
      return m;
    }

    // Without a picture (no dot, or a view too big for one): the nodes as table rows, same numbers.
    function drawTable(vw) {
      var table = el("table", { "class": "tg-table" });
      var head = el("tr");
      ["node", "data", "grad"].forEach(function (h) { head.appendChild(el("th", {}, h)); });
      table.appendChild(head);
      vw.units.forEach(function (u) {
        var tr = el("tr", { "class": "tg-unit tg-" + u.kind, "data-key": u.key });
        var texts = [el("td"), el("td"), el("td")];
        texts.forEach(function (td) { tr.appendChild(td); });
        if (u.kind !== "group") tr.setAttribute("data-node", String(u.ref));
        tr.addEventListener("click", function () { clicked(u); });
        table.appendChild(tr);
        units[u.key] = { el: tr, texts: texts, unit: u };
      });
      canvas.appendChild(table);
      // ... and every step, as `Explorer.table()` prints them; the current one is highlighted.
      var list = el("table", { "class": "tg-table tg-steps" });
      steps.forEach(function (s, i) {
        var tr = el("tr");
        tr.appendChild(el("td", {}, String(i + 1)));
        tr.appendChild(el("td", {}, s.k === "f" ? "forward" : s.k === "s" ? "seed" : "backward"));
        tr.appendChild(el("td", {}, s.t));
        list.appendChild(tr);
        stepRows.push(tr);
      });
      canvas.appendChild(list);
    }

    // One node's numbers, in every box that shows it in this view.
    function drawNode(i) {
      var keys = data.views[view].nodeUnits[i] || [];
      var nd = nodes[i];
      for (var j = 0; j < keys.length; j++) {
        var u = units[keys[j]];
        if (!u || u.unit.kind === "group") continue;
        if (u.unit.kind === "const") { setText(u.texts[0], nd.n); u.el.setAttribute("data-data", String(num(nd.d))); continue; }
        setText(u.texts[0], nd.op && nd.n.indexOf("#") < 0 ? nd.n + "  (" + nd.op + ")" : nd.n);
        setText(u.texts[1], "data " + (shown[i] ? fmt(num(nd.d)) : "?"));
        setText(u.texts[2], "grad " + fmt(grad[i]));
        if (u.done !== shown[i]) { u.el.classList.toggle("tg-done", shown[i]); u.done = shown[i]; }
        if (shown[i]) u.el.setAttribute("data-data", String(num(nd.d))); else u.el.removeAttribute("data-data");
        if (grad[i] !== null) u.el.setAttribute("data-grad", String(grad[i])); else u.el.removeAttribute("data-grad");
      }
    }

    // A step changes one line of a box: the others are left alone (a text written, even unchanged, is laid out again).
    function setText(t, text) {
      if (t.tgText !== text) { t.textContent = text; t.tgText = text; }
    }

    // A folded group's box: its name, size, and how far forward/backward have got inside it. A grad
    // counts as done only once its last contribution has arrived (the step past the node's last
    // backward edge, nodes[i].l): a leaf used three times is still accumulating after its first.
    function drawGroups(only) {
      data.groups.forEach(function (g, gi) {
        if (only && !only[gi]) return;
        var u = units["g" + gi];
        if (!u) return;
        var done = 0, ops = 0, graded = 0;
        for (var j = 0; j < g.members.length; j++) {
          var nd = nodes[g.members[j]];
          if (nd.k === "op") { ops += 1; if (shown[g.members[j]]) done += 1; }
          if (nd.l >= 0 && k > nd.l) graded += 1;
        }
        setText(u.texts[0], g.name);
        setText(u.texts[1], g.members.length + (g.members.length === 1 ? " node" : " nodes") + " \u00b7 in " + g.inputs.length + " \u00b7 out " + g.outputs.length);
        setText(u.texts[2], "fwd " + done + "/" + ops + " \u00b7 grads " + graded + "/" + g.members.length);
        u.el.setAttribute("data-members", String(g.members.length));
        u.el.setAttribute("data-graded", String(graded));
      });
    }

    // ------------------------------------------------------------------ steps
    function apply(s) {
      if (s.k === "f") { shown[s.n] = true; return [s.n]; }
      var i = s.k === "s" ? s.n : edges[s.e][0];
      grad[i] = num(s.a);
      touches[i] += 1;
      return [i];
    }
    function undo(s) {
      if (s.k === "f") { shown[s.n] = false; return [s.n]; }
      var i = s.k === "s" ? s.n : edges[s.e][0];
      touches[i] -= 1;
      grad[i] = touches[i] === 0 ? null : num(s.b);
      return [i];
    }

    function goTo(target) {
      target = Math.max(0, Math.min(n, target));
      var changed = {};
      while (k < target) { apply(steps[k]).forEach(function (i) { changed[i] = 1; }); k += 1; }
      while (k > target) { k -= 1; undo(steps[k]).forEach(function (i) { changed[i] = 1; }); }
      var groups = null;
      for (var i in changed) {
        drawNode(Number(i));
        if (groupOf[i] >= 0) (groups = groups || {})[groupOf[i]] = 1;
      }
      if (groups) drawGroups(groups);
      showCurrent(true);
      if (k === n && timer) toggle();
    }

    function toggle() {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "\u25b6 play"; return; }
      if (k === n) goTo(0);
      play.textContent = "\u23f8 pause";
      timer = setInterval(function () { goTo(k + 1); }, PLAY_MS);
    }

    // Highlight the last applied step's boxes and edge, and write its arithmetic in the panel.
    function showCurrent(follow) {
      lit.forEach(function (e) { e.classList.remove("tg-cur"); });
      lit = [];
      slider.value = String(k);
      counter.textContent = "step " + k + " / " + n;
      root.setAttribute("data-step", String(k));
      if (k === 0) {
        highlight([], [], false);
        stepBox.textContent = "Step 0: the leaves hold their data. Press next (or the right arrow) to run forward.";
        formulaBox.textContent = "";
        return;
      }
      if (stepRows.length) lit.push(stepRows[k - 1]);
      var s = steps[k - 1], vw = data.views[view], touched = [s.n];
      var phase = s.k === "f" ? "forward" : s.k === "s" ? "backward starts" : "backward";
      stepBox.textContent = "";
      stepBox.appendChild(el("b", {}, "Step " + k + " (" + phase + ")"));
      // short names in the text (a long label is "add#4"); the full names on hover
      stepBox.appendChild(el("div", s.f ? { "class": "tg-arith", title: s.f } : { "class": "tg-arith" }, s.t));
      var op = nodes[s.n].op;
      formulaBox.textContent = op ? "local derivative of " + op + ": " + data.formulas[op] : "";
      var drawn = []; // drawn edge indices of this step in this view
      if (s.k === "b") {
        touched.push(edges[s.e][0]);
        if (vw.edgeDrawn[s.e] !== undefined) drawn.push(vw.edgeDrawn[s.e]);
      } else if (s.k === "f") {
        nodes[s.n].p.forEach(function (p) {
          (edgeBetween[p + "," + s.n] || []).forEach(function (id) {
            if (vw.edgeDrawn[id] !== undefined) drawn.push(vw.edgeDrawn[id]);
          });
        });
      }
      var keys = [];
      touched.forEach(function (i) { (vw.nodeUnits[i] || []).forEach(function (key) { if (units[key]) keys.push(key); }); });
      if (overlay) {
        highlight(drawn, keys, follow);
      } else {  // the table: its rows carry the class
        keys.forEach(function (key) { lit.push(units[key].el); });
        lit.forEach(function (e) { e.classList.add("tg-cur"); });
        if (follow && lit.length) scrollTo(lit[0]);
      }
    }

    // Draw the current step on the highlight layer, once per frame: a burst of steps (the slider,
    // a held key, "end") draws only its last one, and the step itself stays a few number updates.
    var pending = null;
    function highlight(drawn, keys, follow) {
      if (!overlay) return;
      if (pending === null && window.requestAnimationFrame) requestAnimationFrame(function () { drawHighlight(pending); pending = null; });
      pending = { drawn: drawn, keys: keys, follow: follow, view: view };
      if (!window.requestAnimationFrame) { drawHighlight(pending); pending = null; }
    }
    function drawHighlight(h) {
      if (!h || h.view !== view || !overlay) return;  // the view changed since: openView drew its own
      var vw = data.views[view], used = { path: 0, rect: 0 }, last = null;
      h.drawn.forEach(function (d) { shape("path", used, { d: vw.edges[d].d }); });
      h.keys.forEach(function (key) {
        var u = units[key].unit;
        last = shape("rect", used, { x: u.x, y: u.y, width: u.w, height: u.h, rx: u.kind === "group" ? 8 : 3, "data-key": key });
      });
      hideUnused(used);
      if (h.follow && last) scrollNow(last);  // in a frame already
    }

    // The next free shape of the highlight layer (made once, then reused), set to `attrs` and shown.
    function shape(tag, used, attrs) {
      var list = pool[tag], s = list[used[tag]];
      if (!s) {
        s = el(tag, { "class": tag === "path" ? "tg-cur-edge" : "tg-cur-box" }, undefined, true);
        overlay.appendChild(s);
        list.push(s);
      }
      used[tag] += 1;
      for (var a in attrs) s.setAttribute(a, attrs[a]);
      s.removeAttribute("display");
      return s;
    }
    function hideUnused(used) {
      ["path", "rect"].forEach(function (tag) {
        for (var i = used[tag]; i < pool[tag].length; i++) pool[tag][i].setAttribute("display", "none");
      });
    }

    // Keep the current box in sight. Scrolling forces a layout and a repaint of the whole visible
    // picture, so it waits for the next frame (once per frame however many steps ran: a held arrow
    // key, the slider), is skipped while the box is in sight, and centres the box when it is not, so
    // the steps that follow need no scroll for a while.
    var scrollTarget = null;
    function scrollTo(e) {
      if (scrollTarget === null && window.requestAnimationFrame) {
        requestAnimationFrame(function () { scrollNow(scrollTarget); scrollTarget = null; });
      }
      scrollTarget = e;
    }
    function scrollNow(t) {
      if (!t || !t.isConnected || !t.scrollIntoView) return;
      var r = t.getBoundingClientRect(), c = canvas.getBoundingClientRect();
      var inside = r.top >= c.top && r.bottom <= c.bottom && r.left >= c.left && r.right <= c.right;
      if (!inside) t.scrollIntoView({ block: "center", inline: "center" });
    }

    // ------------------------------------------------------------------ clicks: open a group, explain a leaf
    function clicked(u) {
      if (u.kind === "group") { openView(u.ref + 1); return; }
      pick(u.ref);
    }

    function pick(i) {
      root.querySelectorAll(".tg-path").forEach(function (e) { e.classList.remove("tg-path"); });
      picked = i;
      pickBox.textContent = "";
      if (i === null) return;
      var nd = nodes[i], ex = data.explain[i];
      pickBox.appendChild(el("b", {}, nd.n));
      pickBox.appendChild(el("div", {}, "data " + fmt(num(nd.d)) + ", final grad " + fmt(num(nd.g)) +
        (nd.k === "op" ? " (" + nd.op + " of " + nd.p.map(function (p) { return nodes[p].n; }).join(", ") + ")" : "")));
      if (data.compare && data.compare.rel[i] !== undefined) {
        pickBox.appendChild(el("div", {}, "other gradient " + fmt(num(data.compare.other[i])) + ", relative error " +
          fmt(num(data.compare.rel[i]))));
      }
      if (!ex) {
        if (nd.k === "input") pickBox.appendChild(el("div", {}, "(paths not precomputed for this leaf: the graph is large; use engine.explain)"));
        return;
      }
      pickBox.appendChild(el("div", {}, "d " + data.title + " / d " + nd.n + " = " + fmt(num(ex.total)) + ", the sum over " +
        ex.count + " path" + (ex.count === 1 ? "" : "s") + (ex.count > ex.paths.length ? " (the " + ex.paths.length + " largest shown)" : "") + ":"));
      var vw = data.views[view];
      ex.paths.forEach(function (path, pi) {
        pickBox.appendChild(el("div", { "class": "tg-pathline" },
          path.map(function (j) { return nodes[j].n; }).join(" \u2192 ") + "  contributes " + fmt(num(ex.products[pi]))));
        path.forEach(function (j, pos) {
          (vw.nodeUnits[j] || []).forEach(function (key) { if (units[key]) units[key].el.classList.add("tg-path"); });
          if (pos + 1 < path.length) {
            (edgeBetween[j + "," + path[pos + 1]] || []).forEach(function (id) {
              var d = vw.edgeDrawn[id];
              if (d !== undefined && lines[d]) lines[d].classList.add("tg-path");
            });
          }
        });
      });
    }

    // ------------------------------------------------------------------ another gradient, painted
    function paintCompare() {
      legendBox.textContent = "";
      var c = data.compare;
      if (!c) return;
      legendBox.appendChild(el("b", {}, "other gradient vs the graph's: relative error"));
      c.legend.forEach(function (b) {
        var row = el("div", { "class": "tg-legend-row" });
        row.appendChild(el("span", { "class": "tg-swatch " + b[0] }));
        row.appendChild(el("span", {}, " " + b[1]));
        legendBox.appendChild(row);
      });
      legendBox.appendChild(el("div", {}, c.disagree.length + " of " + Object.keys(c.rel).length +
        " compared nodes disagree (relative error above " + c.tolerance + ")" +
        (c.first >= 0 ? "; the first in backward order: " + nodes[c.first].n : "")));
      var vw = data.views[view];
      Object.keys(c.cls).forEach(function (i) {
        (vw.nodeUnits[i] || []).forEach(function (key) {
          var u = units[key];
          if (!u || u.unit.kind === "group") return;  // a folded box is painted by its worst member, below
          u.el.classList.add(c.cls[i]);
          if (c.disagree.indexOf(Number(i)) >= 0) u.el.classList.add("tg-disagree");
          if (Number(i) === c.first) u.el.classList.add("tg-first");
        });
      });
      // A folded box holding compared nodes: painted by the worst relative error among them, and it says
      // how many disagree (the nodes themselves are drawn only when the box opens).
      Object.keys(c.groups).forEach(function (gi) {
        var u = units["g" + gi], s = c.groups[gi];
        if (!u) return;
        u.el.classList.add(s.cls);
        if (s.bad > 0) u.el.classList.add("tg-disagree");
        u.el.setAttribute("data-worst-rel", String(num(s.rel)));
        if (u.texts[3]) u.texts[3].textContent = s.bad + " of " + s.n + (s.n === 1 ? " entry disagrees" : " entries disagree");
        var tip = el("title", {}, s.bad + " of " + s.n + " compared entries disagree; worst relative error " + fmt(num(s.rel)) +
          " at " + nodes[s.node].n, true);
        u.el.insertBefore(tip, u.el.firstChild);
      });
      // Point at the worst node: its box (or the folded box that holds it) is outlined, and the legend
      // names it with a button that opens its group.
      if (c.worst < 0) return;
      var gw = groupOf[c.worst], where = vw.nodeUnits[c.worst] || [];
      // (outlined only when something disagrees: a dark outline on a box that agrees would read as an error)
      if (c.disagree.length) where.forEach(function (key) { if (units[key]) units[key].el.classList.add("tg-worst"); });
      var line = el("div", { "class": "tg-worst-line" }, "worst: " + nodes[c.worst].n + ", relative error " + fmt(num(c.rel[c.worst])) +
        (gw >= 0 ? ", in group " + data.groups[gw].name + " " : ""));
      if (gw >= 0 && view !== gw + 1) {
        var open = el("button", { "class": "tg-open-worst", type: "button" }, "open " + data.groups[gw].name);
        open.addEventListener("click", function () { openView(gw + 1); });
        line.appendChild(open);
      }
      legendBox.appendChild(line);
      for (var w = 0; c.disagree.length && w < where.length; w++) if (units[where[w]]) { scrollTo(units[where[w]].el); break; }
    }

    root.addEventListener("keydown", function (ev) {
      var keys = { ArrowRight: function () { goTo(k + 1); }, ArrowLeft: function () { goTo(k - 1); },
        Home: function () { goTo(0); }, End: function () { goTo(n); }, " ": toggle };
      // stopPropagation: inside a notebook, the arrows must not also move between cells
      if (keys[ev.key] && ev.target.tagName !== "INPUT") { ev.preventDefault(); ev.stopPropagation(); keys[ev.key](); }
    });
    root.tgExplorer = { goTo: goTo, steps: n, step: function () { return k; }, openView: openView };
    // A saved page opened as page.html#step=12&view=3 starts there (links to a step; the docs' screenshots).
    var where = {};
    (location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) { var p = kv.split("="); where[p[0]] = Number(p[1]); });
    openView(where.view > 0 && where.view < data.views.length ? where.view : 0);
    if (where.step > 0) goTo(where.step);
    root.setAttribute("data-ready-ms", String(Math.round(performance.now()))); // for benchmarks/explore.py
  }

  var roots = document.querySelectorAll(".tg-explorer:not([data-ready])");
  for (var r = 0; r < roots.length; r++) init(roots[r]);
})();
