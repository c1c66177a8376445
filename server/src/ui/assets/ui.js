// Ferry web UI: the live parts only. Pages work without this script.
// - <pre data-follow="URL">: follows the update's Server-Sent Events (event "output": text
//   with ANSI colours, rendered as server/src/ui/ansi.rs does; event "end": the outcome).
// - <section id="live" data-refresh="SECONDS">: replaced by the same section of a fresh copy
//   of the page, every SECONDS, while the page says so.
// - <div data-terminal="URL" data-follow="URL" data-csrf="TOKEN">: an interactive install's
//   terminal (xterm.js): attaches, sends what is typed and the window size, keeps the lease
//   alive, and writes the output stream into it until the update ends.
// - <time datetime="RFC 3339">: shown relative ("3 min ago"), or as a local date beyond a
//   week, with the exact local time and the UTC one on hover.
"use strict";
(function () {
  function esc(s) {
    return s.replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function Ansi() { this.b = false; this.f = null; this.g = null; }
  Ansi.prototype.apply = function (params) {
    var codes = params === "" ? [0] : params.split(";").map(function (p) { return parseInt(p, 10) || 0; });
    for (var i = 0; i < codes.length; i++) {
      var c = codes[i];
      if (c === 0) { this.b = false; this.f = null; this.g = null; }
      else if (c === 1) this.b = true;
      else if (c === 22) this.b = false;
      else if (c >= 30 && c <= 37) this.f = c - 30;
      else if (c >= 90 && c <= 97) this.f = c - 90 + 8;
      else if (c === 39) this.f = null;
      else if (c >= 40 && c <= 47) this.g = c - 40;
      else if (c >= 100 && c <= 107) this.g = c - 100 + 8;
      else if (c === 49) this.g = null;
    }
  };
  Ansi.prototype.classes = function () {
    var out = [];
    if (this.b) out.push("b");
    if (this.f !== null) out.push("f" + this.f);
    if (this.g !== null) out.push("g" + this.g);
    return out.join(" ");
  };
  // Text with ANSI escapes to HTML; the style carries over from chunk to chunk.
  Ansi.prototype.html = function (text) {
    var out = "", re = /\x1b(?:\[([0-9;?]*)([@-~])|[^[])/g, last = 0, m, self = this;
    function run(s) {
      s = s.replace(/\r\n/g, "\n");
      if (!s) return;
      var cls = self.classes();
      out += cls ? '<span class="' + cls + '">' + esc(s) + "</span>" : esc(s);
    }
    while ((m = re.exec(text)) !== null) {
      run(text.slice(last, m.index));
      last = re.lastIndex;
      if (m[2] === "m") this.apply(m[1] || "");
    }
    run(text.slice(last));
    return out;
  };

  function relative(d) {
    var s = Math.round((Date.now() - d.getTime()) / 1000), ago = s >= 0, a = Math.abs(s);
    var text;
    if (a < 45) return ago ? "just now" : "in a moment";
    if (a < 3600) text = Math.round(a / 60) + " min";
    else if (a < 86400) text = Math.round(a / 3600) + " h";
    else if (a < 7 * 86400) text = Math.round(a / 86400) + (Math.round(a / 86400) === 1 ? " day" : " days");
    else return d.toLocaleDateString(undefined, { year: "numeric", month: "short", day: "numeric" });
    return ago ? text + " ago" : "in " + text;
  }
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (isNaN(d.getTime())) return;
      el.textContent = relative(d);
      el.title = d.toLocaleString(undefined, { dateStyle: "full", timeStyle: "long" }) + " (" + el.getAttribute("datetime") + ")";
    });
  }

  function follow(pre) {
    if (!window.EventSource) return;
    var ansi = new Ansi(), first = true;
    var es = new EventSource(pre.getAttribute("data-follow"));
    es.addEventListener("output", function (e) {
      // The stream starts with the whole output so far: it replaces what the page had.
      if (first) { pre.innerHTML = ""; first = false; }
      pre.insertAdjacentHTML("beforeend", ansi.html(JSON.parse(e.data)));
      pre.scrollTop = pre.scrollHeight;
    });
    es.addEventListener("end", function (e) {
      es.close();
      var status = document.getElementById("status");
      if (status) {
        var failed = /failed|rolled_back|refused/.test(e.data);
        var cls = e.data === "installed" ? "ok" : failed ? "fail" : "";
        status.innerHTML = '<span class="badge ' + cls + '">' + esc(e.data.replace(/_/g, " ")) + "</span>";
      }
      var note = document.getElementById("live-note");
      if (note) note.textContent = "Finished: " + e.data.replace(/_/g, " ") + ".";
      // The facts above say it finished too (the exact time is the server's, on a reload).
      var finished = document.getElementById("finished");
      if (finished && finished.textContent === "-") {
        finished.innerHTML = '<time datetime="' + new Date().toISOString() + '"></time>';
        localTimes(finished);
      }
      pre.setAttribute("data-done", e.data);
    });
  }

  function showStatus(status) {
    var el = document.getElementById("status");
    if (!el) return;
    var failed = /failed|rolled_back|refused/.test(status);
    var cls = status === "installed" ? "ok" : failed ? "fail" : "";
    el.innerHTML = '<span class="badge ' + cls + '">' + esc(status.replace(/_/g, " ")) + "</span>";
  }

  function terminal(div) {
    if (!window.Terminal || !window.EventSource) return;
    var url = div.getAttribute("data-terminal"), csrf = div.getAttribute("data-csrf");
    var note = document.getElementById("live-note");
    // convertEol: the agent's own lines end in a bare LF; without it they draw as a staircase.
    var term = new window.Terminal({ cols: 100, rows: 30, cursorBlink: true, convertEol: true });
    term.open(div);
    var lease = null, done = false, keepAlive = null;
    function post(body) {
      body.csrf = csrf;
      if (lease) body.lease = lease;
      return fetch(url, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body)
      }).then(function (r) {
        return r.ok ? r.json() : r.text().then(function (t) { throw new Error(t); });
      });
    }
    function say(text) { if (note) note.textContent = text; }
    // Attach; while another operator holds the input, watch and ask again every 5 s, so the
    // input comes here once their lease lapses (a reload by the holder takes it back at once).
    function attach() {
      if (done) return;
      post({}).then(function (l) {
        if (!l.holder) {
          say("Another operator holds this terminal: watching only (trying again every 5 s).");
          setTimeout(attach, 5000);
          return;
        }
        lease = l.lease;
        say("");
        div.setAttribute("data-attached", "yes");
        post({ cols: term.cols, rows: term.rows });
        keepAlive = setInterval(function () { if (!done) post({}).catch(function () {}); }, 5000);
      }).catch(function (e) { say("Cannot attach: " + e.message); });
    }
    attach();
    // Keystrokes go one request at a time, in the order typed: two requests in flight may
    // reach the device in either order ("y" then Enter would become Enter then "y"). What is
    // typed while one is in flight goes together in the next.
    var typed = "", sending = false;
    function send() {
      if (sending || !typed || !lease || done) return;
      var n = Math.min(typed.length, 16384);
      if (n < typed.length && /[\uD800-\uDBFF]/.test(typed.charAt(n - 1))) n -= 1;
      var text = typed.slice(0, n);
      typed = typed.slice(n);
      sending = true;
      post({ text: text }).catch(function (e) { say(e.message); }).then(function () {
        sending = false;
        send();
      });
    }
    term.onData(function (d) {
      if (lease && !done) { typed += d; send(); }
    });
    var es = new EventSource(div.getAttribute("data-follow"));
    es.addEventListener("output", function (e) { term.write(JSON.parse(e.data)); });
    es.addEventListener("end", function (e) {
      es.close();
      done = true;
      if (keepAlive) clearInterval(keepAlive);
      term.write("\r\n[" + e.data.replace(/_/g, " ") + "]\r\n");
      showStatus(e.data);
      say("Finished: " + e.data.replace(/_/g, " ") + ".");
      div.setAttribute("data-done", e.data);
    });
    term.focus();
  }

  function refresh(section) {
    var secs = parseFloat(section.getAttribute("data-refresh")) || 2;
    setTimeout(function () {
      fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (!html) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById("live");
          if (!fresh) return;
          section.replaceWith(fresh);
          localTimes(fresh);
          if (fresh.getAttribute("data-refresh")) refresh(fresh);
        })
        .catch(function () { refresh(section); });
    }, secs * 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    document.querySelectorAll("pre[data-follow]").forEach(follow);
    document.querySelectorAll("div[data-terminal]").forEach(terminal);
    var live = document.getElementById("live");
    if (live && live.getAttribute("data-refresh")) refresh(live);
  });
})();
