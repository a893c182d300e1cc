// Offline widgets for the static book (loaded after require.js, before the widgets manager).
(function () {
  // 1. Point require.js at the vendored ipywidgets manager in _static/, so that the files it
  //    loads itself (its icon fonts) resolve there from every page, whatever its folder.
  var root = document.documentElement.dataset.content_root || "./";
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": root + "_static/html-manager" } });

  // 2. The manager typesets widget labels through MathJax 2's MathJax.Hub.Queue; the book runs
  //    MathJax 3, which has no Hub. Provide that one call, before and after MathJax starts.
  var hub = {
    Queue: function () {
      var mj = window.MathJax;
      if (mj && mj.typesetPromise) { mj.typesetPromise(); }
    },
  };
  var mj = (window.MathJax = window.MathJax || {});
  if (mj.version) { mj.Hub = mj.Hub || hub; return; }
  mj.Hub = hub;
  mj.startup = mj.startup || {};
  mj.startup.ready = function () {
    window.MathJax.startup.defaultReady();
    window.MathJax.Hub = hub;
  };
})();
