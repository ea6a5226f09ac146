// Small behaviours every page may use, declared in the markup instead of inline
// handlers (the Content-Security-Policy allows no inline script):
//   data-select-on-focus  — select an input's text when it is clicked (share links)
//   data-print            — a button that prints the page (label sheets)
//   data-confirm="…"      — a form that asks before it is submitted (reversals)
(function () {
  document.addEventListener('click', function (event) {
    var target = event.target;
    if (target.closest && target.closest('[data-select-on-focus]')) target.select();
    if (target.closest && target.closest('[data-print]')) window.print();
  });
  document.addEventListener('submit', function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute('data-confirm');
    if (question && !window.confirm(question)) event.preventDefault();
  });
})();
