// The love board's live feed (templates/boards/love.html).
(function () {
  // Poll the board's JSON with its ETag: an unchanged board answers 304 and nothing
  // else happens; a change fetches the live part of this page once and swaps it in.
  var live = document.getElementById('board-live');
  if (!live || !window.fetch) return;
  var etag = null, every = parseInt(live.dataset.pollMs, 10) || 10000;
  function tick() {
    var headers = etag ? {'If-None-Match': etag} : {};
    fetch(live.dataset.pollUrl + '?limit=1', {headers: headers, cache: 'no-store'})
      .then(function (r) {
        if (r.status === 304) return;
        var first = etag === null;
        etag = r.headers.get('ETag');
        if (first) return;  // the page itself is as fresh as this answer
        return fetch(location.pathname + '?live=1', {cache: 'no-store'})
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (html === null) return;
            var seen = {};
            live.querySelectorAll('.purchase').forEach(function (li) { seen[li.dataset.id] = 1; });
            live.innerHTML = html;
            live.querySelectorAll('.purchase').forEach(function (li) {
              if (!seen[li.dataset.id]) li.classList.add('new');
            });
          });
      })
      .catch(function () {})
      .then(function () { setTimeout(tick, every); });
  }
  tick();
})();
