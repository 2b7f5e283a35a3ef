/* bedrock-sql HTML report: the findings table (filter, search, sort, pages).
   Every value reaches the page through textContent, never as markup. */
(function () {
  "use strict";
  var PAGE = 500;
  var STATUS_RANK = { error: 0, alarm: 1, info: 2, skip: 3, ok: 4 };
  // A row of data.rows, by position (html_report.ROW_FIELDS says the same).
  var STATUS = 0, MUTED = 1, CONTROL = 2, RESOURCE = 3, REASON = 4, KEY = 5, ACCOUNT = 6, REGION = 7,
      IN_USE = 8, SERVED_BY = 9, MUTE_REASON = 10;
  var IN_USE_TEXT = { "1": "yes", "0": "no", "null": "unknown", "-1": "" };
  var IN_USE_RANK = { "1": 0, "null": 1, "0": 2, "-1": 3 };
  var LABELS = ["Status", "Control", "Resource", "Reason", "Key", "Account", "Region", "In use"];

  var data = JSON.parse(document.getElementById("report-data").textContent);
  var controls = data.controls, rows = data.rows;
  var form = document.getElementById("filters");
  var search = document.getElementById("filter-search");
  var table = document.getElementById("findings-table");
  var body = table.tBodies[0];
  var countLine = document.getElementById("findings-count");
  var more = document.getElementById("show-more"), all = document.getElementById("show-all");
  var sortChoice = document.getElementById("findings-sort");
  var view = [], shown = PAGE, order = { key: "status", dir: 1 }, haystacks = null;

  function inUseKey(row) { return String(row[IN_USE]); }

  var SORT_KEYS = {
    // Status ascending is the report's own order (rows come most severe first: errors, then
    // alarms, unmuted before muted, in-use models first), so ties keep the row's position.
    status: function (row) { return STATUS_RANK[row[STATUS]]; },
    control: function (row) { return controls[row[CONTROL]].id.toLowerCase(); },
    resource: function (row) { return row[RESOURCE].toLowerCase(); },
    reason: function (row) { return row[REASON].toLowerCase(); },
    key: function (row) { return row[KEY].toLowerCase(); },
    account: function (row) { return row[ACCOUNT]; },
    region: function (row) { return row[REGION]; },
    in_use: function (row) { return IN_USE_RANK[inUseKey(row)]; }
  };

  function haystack(i) {
    if (!haystacks) { haystacks = new Array(rows.length); }
    if (haystacks[i] === undefined) {
      var row = rows[i];
      haystacks[i] = [row[STATUS], row[MUTED] ? "muted" : "", controls[row[CONTROL]].id, row[RESOURCE], row[REASON],
        row[KEY], row[ACCOUNT], row[REGION], row[SERVED_BY], row[MUTE_REASON]].join("\n").toLowerCase();
    }
    return haystacks[i];
  }

  function applyFilters() {
    var status = form.elements.status.value, control = form.elements.control.value;
    var account = form.elements.account.value, region = form.elements.region.value;
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    view = [];
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      if (status && row[STATUS] !== status) { continue; }
      if (control && String(row[CONTROL]) !== control) { continue; }
      if (account && row[ACCOUNT] !== account) { continue; }
      if (region && row[REGION] !== region) { continue; }
      if (words.length) {
        var text = haystack(i), hit = true;
        for (var w = 0; w < words.length && hit; w++) { hit = text.indexOf(words[w]) !== -1; }
        if (!hit) { continue; }
      }
      view.push(i);
    }
    sortView();
    shown = PAGE;
    render(false);
  }

  function sortView() {
    var keyOf = SORT_KEYS[order.key], dir = order.dir, keys = {};
    view.forEach(function (i) { keys[i] = keyOf(rows[i]); });
    view.sort(function (a, b) {
      var ka = keys[a], kb = keys[b];
      if (ka < kb) { return -dir; }
      if (ka > kb) { return dir; }
      return a - b;
    });
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  function cell(tr, label, className, text) {
    var td = element("td", className, text);
    td.setAttribute("data-label", label);
    tr.appendChild(td);
    return td;
  }

  // Long identifiers (ARNs, control ids) may break after : / and _ (a <wbr> each), not mid-word.
  function breakable(node, text) {
    text.split(/(?<=[:\/_])/).forEach(function (piece, i) {
      if (i) { node.appendChild(document.createElement("wbr")); }
      node.appendChild(document.createTextNode(piece));
    });
    return node;
  }

  function isWebLink(url) { return /^https?:\/\/[^\s]+$/i.test(url); }

  function fixDetails(control) {
    var details = element("details", "fix");
    details.appendChild(element("summary", null, "How to fix"));
    if (control.remediation) { details.appendChild(element("p", null, control.remediation)); }
    if (control.references.length) {
      var list = element("ul");
      control.references.forEach(function (reference) {
        var item = element("li");
        if (isWebLink(reference)) {
          var link = element("a", null, reference);
          link.href = reference;
          link.rel = "noopener noreferrer";
          item.appendChild(link);
        } else {
          item.textContent = reference;
        }
        list.appendChild(item);
      });
      details.appendChild(list);
    }
    return details;
  }

  function rowElement(i) {
    var row = rows[i], control = controls[row[CONTROL]], tr = element("tr");
    tr.setAttribute("data-status", row[STATUS]);
    var status = cell(tr, LABELS[0], "status");
    var badge = element("span", "badge status-" + row[STATUS] + (row[MUTED] ? " is-muted" : ""),
      row[STATUS] + (row[MUTED] ? " (muted)" : ""));
    status.appendChild(badge);
    var controlCell = cell(tr, LABELS[1], "control");
    var link = breakable(element("a"), control.id);
    link.href = "#control-" + row[CONTROL];
    controlCell.appendChild(link);
    breakable(cell(tr, LABELS[2], "resource mono"), row[RESOURCE]);
    var reason = cell(tr, LABELS[3], "reason", row[REASON]);
    if (row[MUTED]) { reason.appendChild(element("p", "accepted", "Accepted risk: " + row[MUTE_REASON])); }
    if (row[STATUS] !== "ok" && (control.remediation || control.references.length)) {
      reason.appendChild(fixDetails(control));
    }
    breakable(cell(tr, LABELS[4], "key mono"), row[KEY]);
    cell(tr, LABELS[5], "account", row[ACCOUNT]);
    cell(tr, LABELS[6], "region", row[REGION]);
    var inUse = cell(tr, LABELS[7], "in-use", IN_USE_TEXT[inUseKey(row)]);
    if (row[SERVED_BY]) { inUse.title = "Served by " + row[SERVED_BY]; }  // the reason names them too
    return tr;
  }

  function number(n) { return n.toLocaleString("en-US"); }

  function render(everything) {
    var count = everything ? view.length : Math.min(shown, view.length);
    var fragment = document.createDocumentFragment();
    for (var k = 0; k < count; k++) { fragment.appendChild(rowElement(view[k])); }
    body.replaceChildren(fragment);
    var said = view.length === rows.length ? number(rows.length) + " findings"
      : number(view.length) + " of " + number(rows.length) + " findings match";
    if (data.total > rows.length) { said += " (the table holds " + number(rows.length) + " of " + number(data.total) + ")"; }
    if (count < view.length) { said += "; showing the first " + number(count); }
    countLine.textContent = said + ".";
    more.hidden = all.hidden = count >= view.length;
    more.textContent = "Show " + number(Math.min(PAGE, view.length - count)) + " more";
  }

  // A heading clicked: its column, ascending, or the other way when it is already the order.
  function sortBy(key) {
    setOrder(key, order.key === key ? -order.dir : 1);
  }

  // The order shown by the headings (aria-sort) and by the phone width's choice, kept alike.
  function setOrder(key, dir) {
    order = { key: key, dir: dir };
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      if (th.getAttribute("data-sort") === key) {
        th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
    sortChoice.value = key + ":" + dir;
    sortView();
    render(false);
  }

  function chosenOrder() {
    var parts = sortChoice.value.split(":");
    setOrder(parts[0], Number(parts[1]));
  }

  // Links in the summaries (a count of a control, account or region) set the filters.
  function showFiltered(link) {
    ["status", "control", "account", "region"].forEach(function (name) {
      var select = form.elements[name], wanted = link.getAttribute("data-" + name) || "";
      var known = Array.prototype.some.call(select.options, function (o) { return o.value === wanted; });
      select.value = known ? wanted : "";
    });
    search.value = "";
    applyFilters();
  }

  var searchTimer = null;
  form.addEventListener("submit", function (event) { event.preventDefault(); applyFilters(); });
  form.addEventListener("change", function (event) {
    if (event.target === sortChoice) { chosenOrder(); } else { applyFilters(); }
  });
  // Clear puts the filters and the order back as the page opened (errors first).
  form.addEventListener("reset", function () { window.setTimeout(function () { chosenOrder(); applyFilters(); }, 0); });
  search.addEventListener("input", function () {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(applyFilters, 120);
  });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    var button = th.querySelector("button");
    if (button) { button.addEventListener("click", function () { sortBy(th.getAttribute("data-sort")); }); }
  });
  more.addEventListener("click", function () { shown += PAGE; render(false); });
  all.addEventListener("click", function () { shown = view.length; render(false); });
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-filter]");
    if (link) { showFiltered(link); }
  });
  // Printing shows every finding that matches the filters, not only the page on screen.
  window.addEventListener("beforeprint", function () { render(true); });
  window.addEventListener("afterprint", function () { render(false); });

  form.hidden = false;
  applyFilters();
}());
