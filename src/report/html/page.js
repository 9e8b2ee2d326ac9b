// faultline report.html: the scrubber, the node cards, the story, the message sequence diagram
// and the counterexample picture, drawn from the JSON block #faultline-data. Text from the data
// goes into the page only through textContent and attribute values, never as markup.
(function () {
  'use strict';
  var SVGNS = 'http://www.w3.org/2000/svg';
  var D = JSON.parse(document.getElementById('faultline-data').textContent);
  var END = D.end_ns;

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function sv(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs || {}) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function titled(e, text) { e.appendChild(sv('title', {}, text)); return e; }
  function ms(ns) { return (ns / 1e6).toFixed(1) + ' ms'; }
  // Index of the first element of sorted `xs` whose key is greater than `t`.
  function upper(xs, t, key) {
    var lo = 0, hi = xs.length;
    while (lo < hi) { var mid = (lo + hi) >> 1; if (key(xs[mid]) <= t) lo = mid + 1; else hi = mid; }
    return lo;
  }

  // ---------------------------------------------------------------- node states
  var nodes = D.nodes.map(function (n) { return { name: n[0], client: n[1], part: n[2], runs: n[3] }; });
  var servers = nodes.filter(function (n) { return !n.client; });
  var clients = nodes.filter(function (n) { return n.client; });
  var stateLog = {}; // node -> field -> [[t, value]] in time order
  D.states.forEach(function (c) {
    var byField = stateLog[c[1]] || (stateLog[c[1]] = {});
    (byField[c[2]] || (byField[c[2]] = [])).push([c[0], c[3]]);
  });
  function stateAt(node, t) {
    var out = {}, byField = stateLog[node] || {};
    Object.keys(byField).forEach(function (f) {
      var xs = byField[f], i = upper(xs, t, function (x) { return x[0]; });
      if (i > 0 && xs[i - 1][1] !== '') out[f] = xs[i - 1][1];
    });
    return out;
  }

  var cards = document.getElementById('cards');
  var cardOf = {};
  var shownClients = clients.length <= 16 ? clients : [];
  // Without a trace nothing is known of the nodes' states: no cards rather than cards saying 'up'.
  if (!D.trace_available) {
    servers = []; clients = []; shownClients = [];
    cards.appendChild(el('p', { 'class': 'note' }, 'No trace was kept for this run: the nodes\' states are not known.'));
  }
  servers.concat(shownClients).forEach(function (n) {
    var card = el('div', { 'class': 'card' + (n.client ? ' client' : ''), 'data-node': n.name });
    var head = el('div', { 'class': 'name' });
    head.appendChild(el('span', {}, n.name));
    var badge = el('span', { 'class': 'badge' });
    head.appendChild(badge);
    card.appendChild(head);
    card.appendChild(el('div', { 'class': 'field' }, n.part === n.runs ? n.runs : n.part + ' · ' + n.runs));
    var fields = el('div', { 'class': 'fields' });
    card.appendChild(fields);
    cards.appendChild(card);
    cardOf[n.name] = { card: card, badge: badge, fields: fields };
  });
  var clientSummary = null;
  if (clients.length > shownClients.length) {
    clientSummary = el('p', { 'class': 'note', id: 'client-summary' });
    cards.parentNode.insertBefore(clientSummary, cards.nextSibling);
  }

  function renderCards(t) {
    Object.keys(cardOf).forEach(function (name) {
      var c = cardOf[name], s = stateAt(name, t);
      var status = s.status || 'up', role = s.role || '';
      c.card.setAttribute('data-status', status);
      c.card.setAttribute('data-role', role);
      var badge = status !== 'up' ? status : role;
      c.badge.textContent = badge;
      c.card.classList.toggle('no-badge', !badge);
      c.fields.textContent = '';
      var keys = Object.keys(s).filter(function (k) { return k !== 'status' && k !== 'role'; });
      keys.sort(function (a, b) { return rank(a) - rank(b) || (a < b ? -1 : 1); });
      keys.forEach(function (k) {
        var f = el('div', { 'class': 'field', 'data-field': k }, k + ' ');
        f.appendChild(el('b', {}, s[k]));
        c.fields.appendChild(f);
      });
    });
    if (clientSummary) {
      var counts = {};
      clients.forEach(function (n) { var st = stateAt(n.name, t).status || 'up'; counts[st] = (counts[st] || 0) + 1; });
      clientSummary.textContent = clients.length + ' clients: ' + Object.keys(counts).map(function (k) { return counts[k] + ' ' + k; }).join(', ');
    }
  }
  function rank(field) { var i = ['term', 'log', 'commit'].indexOf(field); return i < 0 ? 9 : i; }

  // ---------------------------------------------------------------- faults now, story
  function activeFaults(t) {
    return D.faults.filter(function (f) {
      return f.start_ns <= t && (f.end_ns === null ? true : t < f.end_ns) && f.start_ns !== f.end_ns;
    });
  }
  var faultsNow = document.getElementById('faults-now');
  function renderFaultsNow(t) {
    faultsNow.textContent = '';
    var active = activeFaults(t);
    if (active.length === 0) { faultsNow.textContent = 'No fault in effect.'; return; }
    faultsNow.appendChild(document.createTextNode('In effect: '));
    active.forEach(function (f) {
      faultsNow.appendChild(el('span', { 'class': 'fault' }, f.label + ' (since ' + ms(f.start_ns) + ')'));
    });
  }

  var story = document.getElementById('story');
  function renderStory(t) {
    story.textContent = '';
    var lines = D.lines;
    if (lines.length === 0) {
      story.appendChild(el('li', {}, D.trace_available ? 'No story lines for this run.' : 'No trace: no story.'));
      return;
    }
    var i = upper(lines, t, function (l) { return l[0]; });
    var from = Math.max(0, i - 10), until = Math.min(lines.length, i + 6);
    for (var k = from; k <= until; k++) {
      if (k === i) story.appendChild(el('li', { 'class': 'marker' }, '▶ ' + ms(t)));
      if (k === until) break;
      var l = lines[k];
      var li = el('li', { 'class': k < i ? 'before' : 'after' });
      var when = el('span', { 'class': 'when', 'data-t': String(l[0]), title: 'go to this instant' }, ms(l[0]));
      li.appendChild(when);
      li.appendChild(el('span', { 'class': 'topic' }, l[2]));
      li.appendChild(el('span', { 'class': 'text' }, l[3]));
      story.appendChild(li);
    }
    var marker = story.querySelector('.marker');
    if (marker) story.scrollTop = Math.max(0, marker.offsetTop - story.clientHeight / 2);
  }
  story.addEventListener('click', function (e) {
    var w = e.target.closest('.when');
    if (w) go(Number(w.getAttribute('data-t')), false);
  });
  if (D.lines_left_out > 0) {
    story.parentNode.insertBefore(el('p', { 'class': 'note' }, D.lines_left_out +
      ' story lines are left out (the page keeps at most ' + D.lines.length +
      ': every fault, node and election line, then the first others).'), story.nextSibling);
  }
  if (D.states_left_out > 0) {
    cards.parentNode.insertBefore(el('p', { 'class': 'note' }, D.states_left_out +
      ' state changes are left out (every status, role and term change is kept; other fields ' +
      'show their last value in each thousandth of the run).'), cards.nextSibling);
  }

  // ---------------------------------------------------------------- overview strip
  var overview = document.getElementById('overview');
  var ovNow = null;
  (function drawOverview() {
    var W = 1000, H = 34, x = function (t) { return END > 0 ? t / END * W : 0; };
    var svg = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, preserveAspectRatio: 'none', 'aria-label': 'faults over the run' });
    svg.appendChild(sv('rect', { x: 0, y: 0, width: W, height: H, fill: '#f1f3f6' }));
    D.faults.forEach(function (f) {
      var node = ['crash', 'pause'].indexOf(f.kind) >= 0;
      var end = f.end_ns === null ? END : f.end_ns;
      var r = sv('rect', {
        x: x(f.start_ns), y: node ? 18 : 2, width: Math.max(1.5, x(end) - x(f.start_ns)), height: 14,
        fill: f.kind === 'crash' ? '#8a9099' : f.kind === 'pause' ? '#e3a23b' : '#f0a04b', 'fill-opacity': 0.7,
      });
      svg.appendChild(titled(r, f.label + ' [' + ms(f.start_ns) + ', ' + (f.end_ns === null ? 'end' : ms(f.end_ns)) + ')'));
    });
    D.cited_ns.forEach(function (t) {
      svg.appendChild(titled(sv('rect', { x: x(t) - 1, y: 0, width: 2, height: H, fill: '#c62828' }), 'cited by a failed check: ' + ms(t)));
    });
    ovNow = sv('rect', { x: 0, y: 0, width: 3, height: H, fill: '#1d2330' });
    svg.appendChild(ovNow);
    svg.addEventListener('click', function (e) {
      var box = svg.getBoundingClientRect();
      go(Math.round((e.clientX - box.left) / box.width * END), false);
    });
    overview.appendChild(svg);
  })();

  // ---------------------------------------------------------------- message sequence diagram
  var lamport = document.getElementById('lamport');
  var lamportNow = null, lamportY = null, lamportFrom = 0, lamportUntil = 0;
  var DROP_COLOURS = { loss: '#c62828', partition: '#e07b00', crashed: '#6a1b9a', paused: '#b26a00' };
  function dropColour(reason) { return DROP_COLOURS[reason] || '#ad1457'; }
  var PALETTE = ['#2f6fb3', '#1f8a4c', '#7b4cc2', '#00838f', '#8d6e63', '#3949ab', '#558b2f', '#5d4037'];
  function kindColour(kind) {
    var h = 0;
    for (var i = 0; i < kind.length; i++) h = (h * 31 + kind.charCodeAt(i)) >>> 0;
    return PALETTE[h % PALETTE.length];
  }
  (function drawLamport() {
    var note = document.getElementById('messages-note');
    var msgs = D.messages;
    if (!D.trace_available) { note.textContent = 'No trace was kept for this run, so no messages are shown.'; return; }
    if (msgs.length === 0) { note.textContent = 'No message was sent in this run.'; lamport.style.display = 'none'; return; }
    var first = msgs[0][0], last = msgs[msgs.length - 1][0];
    var text = msgs.length >= D.messages_total
      ? 'All ' + msgs.length + ' messages of the run, sent between ' + ms(first) + ' and ' + ms(last) + '.'
      : 'A window of ' + msgs.length + ' of the run\'s ' + D.messages_total + ' messages: those sent between ' +
        ms(first) + ' and ' + ms(last) + ', around ' + ms(D.focus.t_ns) + ' (' + D.focus.why + '). The others are left out (the page shows at most 2000).';
    note.textContent = text + ' Time runs downward; click the diagram to move the scrubber there.';

    var maxEnd = last;
    msgs.forEach(function (m) { if (m[4] !== null && m[4] > maxEnd) maxEnd = m[4]; });
    var from = first, until = Math.max(last + 1, Math.min(maxEnd, last + (last - first) * 0.1 + 1e6));
    lamportFrom = from; lamportUntil = until;
    var used = {};
    msgs.forEach(function (m) { used[m[1]] = true; used[m[2]] = true; });
    var lanes = nodes.filter(function (n) { return !n.client || used[n.name]; }).map(function (n) { return n.name; });
    Object.keys(used).forEach(function (n) { if (lanes.indexOf(n) < 0) lanes.push(n); });
    var laneOf = {};
    lanes.forEach(function (n, i) { laneOf[n] = i; });
    var avail = Math.max(600, lamport.clientWidth - 90);
    var laneW = Math.max(70, Math.min(140, avail / lanes.length));
    var left = 84, top = 34, height = Math.max(360, Math.min(16000, msgs.length * 10));
    var W = left + laneW * lanes.length + 20, H = top + height + 24;
    var lx = function (n) { return left + laneW * (laneOf[n] + 0.5); };
    var y = function (t) { return top + (t - from) / (until - from) * height; };
    lamportY = y;
    var svg = sv('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, 'class': 'lamport', 'font-size': 11 });
    var defs = sv('defs');
    var marker = sv('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    marker.appendChild(sv('path', { d: 'M0,0 L10,5 L0,10 z', fill: 'context-stroke' }));
    defs.appendChild(marker);
    svg.appendChild(defs);

    // Faults: network faults as bands across the diagram, node faults on their lane.
    var clip = function (t) { return Math.max(from, Math.min(until, t)); };
    D.faults.forEach(function (f) {
      var end = f.end_ns === null ? until : f.end_ns;
      if (end < from || f.start_ns > until) return;
      var y0 = y(clip(f.start_ns)), y1 = y(clip(end));
      if (f.kind === 'crash' || f.kind === 'pause') {
        if (laneOf[f.nodes[0]] === undefined) return;
        var c = f.kind === 'crash' ? '#8a9099' : '#e3a23b';
        svg.appendChild(titled(sv('rect', { x: lx(f.nodes[0]) - laneW * 0.3, y: y0, width: laneW * 0.6, height: Math.max(2, y1 - y0), fill: c, 'fill-opacity': 0.28, 'class': 'fault node-fault' }), f.label));
        svg.appendChild(sv('text', { x: lx(f.nodes[0]), y: y0 + 12, 'text-anchor': 'middle', fill: '#444', 'class': 'halo' }, f.kind === 'crash' ? 'crashed' : 'paused'));
      } else if (f.start_ns === f.end_ns) {
        if (laneOf[f.nodes[0]] === undefined) return;
        svg.appendChild(titled(sv('circle', { cx: lx(f.nodes[0]), cy: y0, r: 4, fill: '#e07b00', 'class': 'fault' }), f.label));
      } else {
        svg.appendChild(titled(sv('rect', { x: left, y: y0, width: laneW * lanes.length, height: Math.max(2, y1 - y0), fill: '#f0a04b', 'fill-opacity': 0.1, 'class': 'fault network-fault' }), f.label));
        svg.appendChild(sv('text', { x: 4, y: y0 + 12, fill: '#b25e00', 'font-size': 10, 'class': 'halo' }, f.label.length > 40 ? f.label.slice(0, 39) + '…' : f.label));
      }
    });
    // Lanes and the time axis.
    lanes.forEach(function (n) {
      svg.appendChild(sv('line', { x1: lx(n), x2: lx(n), y1: top - 6, y2: top + height, stroke: '#b8c0cc', 'stroke-width': 1 }));
      for (var yy = 0; yy < height; yy += 700) {
        svg.appendChild(sv('text', { x: lx(n), y: top - 12 + yy, 'text-anchor': 'middle', 'font-weight': 700, 'font-size': 12, 'class': 'lane halo' }, n));
      }
    });
    var step = niceStep((until - from) / Math.max(4, height / 90));
    for (var t = Math.ceil(from / step) * step; t <= until; t += step) {
      svg.appendChild(sv('line', { x1: left - 6, x2: left + laneW * lanes.length, y1: y(t), y2: y(t), stroke: '#eef0f4' }));
      svg.appendChild(sv('text', { x: left - 8, y: y(t) + 4, 'text-anchor': 'end', fill: '#5d6778', 'font-size': 10 }, ms(t)));
    }
    // Messages.
    var labelled = {};
    msgs.forEach(function (m) {
      var send = m[0], from_ = m[1], to = m[2], kind = m[3], end = m[4], dropped = m[5], dup = m[6];
      var x1 = lx(from_), y1 = y(send), x2 = lx(to), y2 = y(end === null ? until : Math.min(end, until));
      var g = sv('g', { 'class': 'msg' + (dropped ? ' dropped' : '') });
      var tip = from_ + ' → ' + to + ': ' + kind + (dup ? ' (network duplicate)' : '') + ', sent ' + ms(send) +
        (dropped ? ', dropped (' + dropped + ') ' + ms(end) : end === null ? ', still in flight at the end' : ', delivered ' + ms(end));
      g.appendChild(sv('title', {}, tip));
      if (from_ === to) {
        g.appendChild(sv('path', { d: 'M' + x1 + ',' + y1 + ' c 30,0 30,' + Math.max(6, y2 - y1) + ' 0,' + Math.max(6, y2 - y1), fill: 'none', stroke: kindColour(kind), 'marker-end': 'url(#arrow)' }));
      } else if (dropped) {
        // Drawn part of the way, to an X at the time it died.
        var xm = x1 + (x2 - x1) * 0.6, c = dropColour(dropped);
        g.appendChild(sv('line', { x1: x1, y1: y1, x2: xm, y2: y2, stroke: c, 'stroke-dasharray': '4 3', 'stroke-width': 1.2 }));
        g.appendChild(sv('path', { d: 'M' + (xm - 4) + ',' + (y2 - 4) + ' l8,8 m0,-8 l-8,8', stroke: c, 'stroke-width': 2, 'class': 'drop-mark' }));
      } else {
        g.appendChild(sv('line', { x1: x1, y1: y1, x2: x2, y2: y2, stroke: kindColour(kind), 'stroke-width': 1.1, 'stroke-dasharray': end === null ? '2 3' : null, 'marker-end': 'url(#arrow)' }));
      }
      // A label where there is room for one.
      var mx = (x1 + x2) / 2, my = (y1 + y2) / 2 - 2, cell = Math.round(mx / 90) + ':' + Math.round(my / 14);
      if (!labelled[cell] && from_ !== to) {
        labelled[cell] = true;
        g.appendChild(sv('text', { x: mx, y: my, 'text-anchor': 'middle', 'font-size': 10, fill: dropped ? dropColour(dropped) : '#333', 'class': 'halo' }, kind));
      }
      svg.appendChild(g);
    });
    lamportNow = sv('g', { 'class': 'now-line' });
    lamportNow.appendChild(sv('line', { x1: 0, x2: W, y1: 0, y2: 0, stroke: '#1d2330', 'stroke-width': 1.5, 'stroke-dasharray': '6 3' }));
    lamportNow.appendChild(sv('text', { x: 4, y: -3, 'font-weight': 700, 'font-size': 10, 'class': 'halo' }, 'scrubber'));
    svg.appendChild(lamportNow);
    svg.addEventListener('click', function (e) {
      var box = svg.getBoundingClientRect();
      var t = from + (e.clientY - box.top - top) / height * (until - from);
      go(Math.round(Math.max(0, Math.min(END, t))), false);
    });
    lamport.appendChild(svg);

    var legend = document.getElementById('lamport-legend');
    legend.appendChild(el('span', { style: '--c:#2f6fb3' }, 'delivered (colour by kind)'));
    var reasons = {};
    msgs.forEach(function (m) { if (m[5]) reasons[m[5]] = true; });
    Object.keys(reasons).forEach(function (r) { legend.appendChild(el('span', { style: '--c:' + dropColour(r) }, '✕ dropped: ' + r)); });
    legend.appendChild(el('span', { style: '--c:rgba(240,160,75,0.35)' }, 'network fault'));
    legend.appendChild(el('span', { style: '--c:rgba(138,144,153,0.45)' }, 'node crashed'));
  })();
  function niceStep(x) {
    var p = Math.pow(10, Math.floor(Math.log10(Math.max(1, x))));
    var n = x / p;
    return (n <= 1 ? 1 : n <= 2 ? 2 : n <= 5 ? 5 : 10) * p;
  }

  // ---------------------------------------------------------------- counterexample
  (function drawPorcupine() {
    var cx = D.counterexample, box = document.getElementById('porcupine');
    if (!cx || !box) return;
    var ops = cx.operations;
    var times = [];
    ops.forEach(function (o) { times.push(o.invoke_ns); if (o.complete_ns !== null) times.push(o.complete_ns); });
    times.sort(function (a, b) { return a - b; });
    var slots = [];
    times.forEach(function (t) { if (slots.length === 0 || slots[slots.length - 1] !== t) slots.push(t); });
    var slotOf = function (t) { return upper(slots, t, function (s) { return s; }) - 1; };
    var procs = [];
    ops.forEach(function (o) { if (procs.indexOf(o.process) < 0) procs.push(o.process); });
    procs.sort(function (a, b) { return a - b; });
    var nodeOf = {};
    ops.forEach(function (o) { if (o.node) nodeOf[o.process] = o.node; });
    var SW = 22, left = 10, top = 40, RH = 30, BH = 20, LW = 130;
    var W = left + SW * (slots.length + 2) + 20, H = top + RH * procs.length + 16;
    var x = function (t, end) { return left + SW * slotOf(t) + (end ? SW * 0.8 : 0); };
    var svg = sv('svg', { width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, 'font-size': 11 });
    // The rows' names stay in view while the operations scroll.
    var names = sv('svg', { width: LW, height: H, viewBox: '0 0 ' + LW + ' ' + H, 'font-size': 11 });
    procs.forEach(function (p, i) {
      var yy = top + RH * i;
      if (i % 2 === 0) {
        svg.appendChild(sv('rect', { x: 0, y: yy, width: W, height: RH, fill: '#f7f8fa' }));
        names.appendChild(sv('rect', { x: 0, y: yy, width: LW, height: RH, fill: '#f7f8fa' }));
      }
      names.appendChild(sv('text', { x: 8, y: yy + RH / 2 + 4, 'font-weight': 600 }, 'process ' + p + (nodeOf[p] ? ' (' + nodeOf[p] + ')' : '')));
    });
    names.appendChild(sv('text', { x: 8, y: top - 10, fill: '#5d6778', 'font-size': 10 }, 'time →'));
    document.getElementById('porcupine-rows').appendChild(names);
    for (var s = 0; s < slots.length; s += 6) {
      svg.appendChild(sv('line', { x1: left + SW * s, x2: left + SW * s, y1: top - 6, y2: H - 10, stroke: '#eceff3' }));
      svg.appendChild(sv('text', { x: left + SW * s, y: top - 10, 'text-anchor': 'middle', fill: '#5d6778', 'font-size': 10 }, ms(slots[s])));
    }
    var blocked = ops[cx.blocked];
    if (blocked && blocked.complete_ns !== null) {
      var bx = x(blocked.complete_ns, true);
      svg.appendChild(sv('line', { x1: bx, x2: bx, y1: top - 4, y2: H - 10, stroke: '#c62828', 'stroke-dasharray': '5 3' }));
      svg.appendChild(sv('text', { x: bx + 4, y: H - 2, fill: '#c62828', 'font-size': 10 }, 'the red operation must have taken effect by here'));
    }
    ops.forEach(function (o, i) {
      var row = procs.indexOf(o.process);
      var x1 = x(o.invoke_ns, false), x2 = o.complete_ns === null ? W - 10 : x(o.complete_ns, true);
      var inPrefix = o.prefix_position !== null, isBlocked = i === cx.blocked;
      var cls = 'op' + (isBlocked ? ' blocked' : inPrefix ? ' prefix' : '');
      var g = sv('g', { 'class': cls });
      var label = (inPrefix ? (o.prefix_position + 1) + '. ' : '') + o.op;
      g.appendChild(sv('title', {}, 'process ' + o.process + ': ' + o.op + '; invoked ' + ms(o.invoke_ns) + ', ' +
        (o.complete_ns === null ? 'never completed' : 'completed ' + ms(o.complete_ns)) +
        (isBlocked ? '; cannot be placed: ' + cx.explanation : inPrefix ? '; step ' + (o.prefix_position + 1) + ' of the linearizable prefix' : '; not in the prefix')));
      g.appendChild(sv('rect', {
        x: x1, y: top + RH * row + (RH - BH) / 2, width: Math.max(4, x2 - x1), height: BH, rx: 3,
        fill: isBlocked ? '#fde0e0' : inPrefix ? '#d4eedd' : '#eef0f3',
        stroke: isBlocked ? '#c62828' : inPrefix ? '#1f8a4c' : '#9aa3b0',
        'stroke-width': isBlocked ? 2.5 : 1, 'stroke-dasharray': o.complete_ns === null ? '4 3' : null, 'class': cls,
      }));
      if (label.length * 6.2 < x2 - x1 - 4 || isBlocked) {
        g.appendChild(sv('text', { x: x1 + 4, y: top + RH * row + RH / 2 + 4, fill: isBlocked ? '#8e0000' : '#1d2330', 'font-weight': isBlocked ? 700 : 400, 'class': isBlocked ? 'halo' : null }, label));
      }
      svg.appendChild(g);
    });
    box.appendChild(svg);
    if (blocked) box.scrollLeft = Math.max(0, x(blocked.invoke_ns, false) - box.clientWidth / 2);
  })();

  // ---------------------------------------------------------------- the instant
  var input = document.getElementById('t');
  var now = document.getElementById('now');
  input.max = String(END);
  input.step = '1';
  function setTime(t, scrollDiagram) {
    t = Math.max(0, Math.min(END, Math.round(t)));
    input.value = String(t);
    now.textContent = ms(t);
    document.documentElement.setAttribute('data-t', String(t));
    renderCards(t);
    renderFaultsNow(t);
    renderStory(t);
    if (ovNow) ovNow.setAttribute('x', String(END > 0 ? t / END * 1000 - 1.5 : 0));
    if (lamportNow) {
      var inside = t >= lamportFrom && t <= lamportUntil;
      lamportNow.style.display = inside ? '' : 'none';
      if (inside) {
        var yy = lamportY(t);
        lamportNow.setAttribute('transform', 'translate(0,' + yy + ')');
        if (scrollDiagram) lamport.scrollTop = Math.max(0, yy - lamport.clientHeight / 3);
      }
    }
  }
  function go(t, scrollToCluster) {
    setTime(t, true);
    try { window.history.replaceState(null, '', '#t=' + input.value); } catch (e) { /* file: URLs in some browsers */ }
    if (scrollToCluster) document.getElementById('cluster').scrollIntoView({ block: 'start' });
  }
  input.addEventListener('input', function () { go(Number(input.value), false); });
  document.addEventListener('click', function (e) {
    var a = e.target.closest('a.t');
    if (!a) return;
    e.preventDefault();
    go(Number(a.getAttribute('data-t')), true);
  });
  function hashTime() {
    var m = /(?:^#|&)t=(\d+)/.exec(location.hash);
    return m ? Number(m[1]) : null;
  }
  window.addEventListener('hashchange', function () {
    var t = hashTime();
    if (t !== null) { setTime(t, true); document.getElementById('cluster').scrollIntoView({ block: 'start' }); }
  });
  var start = hashTime();
  setTime(start === null ? D.focus.t_ns : start, true);

  var errors = document.documentElement.getAttribute('data-errors');
  if (errors) document.getElementById('page-errors').textContent = 'Errors on this page: ' + errors;
  document.documentElement.setAttribute('data-ready', '1');
})();
