// Heddle's dashboard: polls the control plane's JSON and redraws in place (no reload).
"use strict";

const POLL_MS = 2000;
const state = {
  loadedAt: Date.now(),   // unchanged while the page lives: a reload would reset it
  updates: 0,             // graph refreshes since the page loaded
  selected: "",           // the node id of the selected workload
  proxyIds: {},           // "namespace/name" -> node id of its proxy
  cy: null,
};
window.heddleDashboard = state;

function fmt(value, digits) {
  return Number(value).toFixed(digits);
}

function edgeLabel(e) {
  const p99 = e.p99Ms === null ? "–" : fmt(e.p99Ms, 0) + " ms";
  return (e.mtls ? "mTLS · " : "") + fmt(e.rps, 1) + " rps · " + fmt(e.errorRate * 100, 0) +
    "% err · p99 " + p99;
}

function nodeLabel(n) {
  if (n.kind === "workload") {
    return n.name + "\n" + n.namespace + (n.version ? " · " + n.version : "");
  }
  if (n.kind === "service") return n.name + "\n(service)";
  return "unknown";
}

function makeGraph() {
  return cytoscape({
    container: document.getElementById("graph"),
    wheelSensitivity: 0.3,
    style: [
      { selector: "node", style: {
        "label": "data(label)", "text-wrap": "wrap", "font-size": 11,
        "text-valign": "bottom", "text-margin-y": 4, "width": 34, "height": 34,
        "background-color": "#3b6fd4", "border-width": 2, "border-color": "#fff" } },
      { selector: "node[kind = 'service']", style: {
        "shape": "triangle", "background-color": "#7a59c9" } },
      { selector: "node[kind = 'unknown']", style: {
        "shape": "diamond", "background-color": "#8a8f99" } },
      { selector: "node:selected", style: { "border-color": "#f2a900", "border-width": 4 } },
      { selector: "edge", style: {
        "label": "data(label)", "font-size": 9, "curve-style": "bezier",
        "target-arrow-shape": "triangle", "width": 2, "line-color": "#8fa3c7",
        "target-arrow-color": "#8fa3c7", "text-background-color": "#fff",
        "text-background-opacity": 0.85, "text-rotation": "none",
        "line-style": "dashed" } },
      { selector: "edge[?mtls]", style: { "line-style": "solid" } },
      { selector: "edge[?active]", style: { "line-color": "#2f9e57",
        "target-arrow-color": "#2f9e57", "width": 3 } },
      { selector: "edge[?failing]", style: { "line-color": "#c0262d",
        "target-arrow-color": "#c0262d", "width": 3 } },
    ],
  });
}

function updateGraph(graph) {
  const cy = state.cy;
  const wanted = new Set();
  let added = false;
  cy.batch(() => {
    for (const n of graph.nodes) {
      wanted.add(n.id);
      const data = { id: n.id, kind: n.kind, label: nodeLabel(n), name: n.name,
                     namespace: n.namespace };
      const existing = cy.getElementById(n.id);
      if (existing.nonempty()) existing.data(data);
      else { cy.add({ group: "nodes", data }); added = true; }
    }
    for (const e of graph.edges) {
      const id = e.source + "->" + e.target;
      wanted.add(id);
      const data = { id, source: e.source, target: e.target, label: edgeLabel(e),
                     rps: e.rps, errorRate: e.errorRate, p99Ms: e.p99Ms, total: e.total,
                     mtls: e.mtls, denied: e.denied, active: e.rps > 0,
                     failing: e.denied || e.errorRate > 0 };
      const existing = cy.getElementById(id);
      if (existing.nonempty()) existing.data(data);
      else { cy.add({ group: "edges", data }); added = true; }
    }
    cy.elements().filter((el) => !wanted.has(el.id())).remove();
  });
  if (added) {
    cy.layout({ name: "breadthfirst", directed: true, spacingFactor: 1.1, padding: 30,
                animate: false }).run();
  }
  const rows = graph.edges.map((e) => {
    const source = cy.getElementById(e.source).data("name");
    const target = cy.getElementById(e.target).data("name");
    return `<tr data-edge="${e.source}->${e.target}"><td>${source} → ${target}</td>` +
      `<td class="rps">${fmt(e.rps, 2)}</td><td>${fmt(e.errorRate * 100, 1)}%</td>` +
      `<td>${e.p99Ms === null ? "–" : fmt(e.p99Ms, 0)}</td><td class="total">${e.total}</td>` +
      `<td>${e.mtls ? "mTLS" : "plaintext"}${e.denied ? " · denied" : ""}</td></tr>`;
  });
  document.querySelector("#traffic tbody").innerHTML = rows.join("");
  const failures = Object.entries(graph.scrapeFailures || {});
  document.getElementById("scrape-failures").innerHTML = failures.map(([proxy, why]) =>
    `<li>${escapeHtml(proxy.split("~")[2] || proxy)}: ${escapeHtml(why)}</li>`).join("");
  const total = graph.edges.reduce((sum, e) => sum + e.rps, 0);
  document.getElementById("summary").textContent =
    `${graph.nodes.length} nodes · ${graph.edges.length} edges · ` +
    `${fmt(total, 1)} edge-requests/s over ${fmt(graph.intervalSeconds, 0)} s`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function updateProxies(proxies) {
  state.proxyIds = {};
  const rows = proxies.filter((p) => p.connected).map((p) => {
    const [, , nameNs] = p.proxy.split("~");
    const [name, namespace] = nameNs.split(".");
    state.proxyIds[`${namespace}/${name}`] = p.proxy;
    const states = Object.values(p.types).map((t) => t.state);
    const worst = ["NACK", "STALE", "NOT SENT"].find((s) => states.includes(s)) || "SYNCED";
    return `<tr><td>${escapeHtml(name)}.${escapeHtml(namespace)}</td>` +
      `<td class="state-${worst.replace(" ", "_")}">${worst}</td></tr>`;
  });
  document.querySelector("#proxies tbody").innerHTML = rows.join("");
}

function updateProblems(problems) {
  const items = [];
  for (const file of problems.files) {
    for (const p of file.problems) {
      const level = (p.severity || p.level || "").toLowerCase();
      items.push(`<li class="${escapeHtml(level)}">${escapeHtml(p.text || p.message ||
        JSON.stringify(p))}</li>`);
    }
  }
  document.getElementById("problems").innerHTML =
    items.length ? items.join("") : "<li class=\"hint\">none</li>";
}

async function showWorkload(nodeId) {
  const node = state.cy.getElementById(nodeId);
  const proxy = state.proxyIds[`${node.data("namespace")}/${node.data("name")}`];
  const panel = document.getElementById("workload");
  if (!proxy) {
    panel.innerHTML = `<p class="hint">${escapeHtml(node.data("name"))}: no connected proxy</p>`;
    return;
  }
  const response = await fetch("api/workload?proxy=" + encodeURIComponent(proxy));
  const body = await response.json();
  panel.innerHTML = `<p><b>${escapeHtml(body.workload)}.${escapeHtml(body.namespace)}</b>` +
    ` (${escapeHtml(body.serviceAccount)})</p><pre>${escapeHtml(JSON.stringify(
      { labels: body.labels, policies: body.policies, services: body.services,
        envoy: body.envoy }, null, 2))}</pre>`;
}

async function poll() {
  try {
    const [graph, proxies, problems] = await Promise.all(
      ["api/graph", "api/proxies", "api/problems"].map((path) =>
        fetch(path).then((r) => r.json())));
    updateProxies(proxies);
    updateGraph(graph);
    updateProblems(problems);
    state.updates += 1;
    document.getElementById("updated").textContent =
      "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    document.getElementById("updated").textContent = "control plane unreachable: " + err;
  }
  setTimeout(poll, POLL_MS);
}

state.cy = makeGraph();
state.cy.on("tap", "node[kind = 'workload']", (evt) => {
  state.selected = evt.target.id();
  showWorkload(state.selected);
});
poll();
