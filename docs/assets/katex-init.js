// Render the math that pymdownx.arithmatex (generic mode) left as \( ... \) and \[ ... \] in
// .arithmatex elements, with the vendored KaTeX; re-run on every page Material loads.
function renderTwogradMath(root) {
  root.querySelectorAll(".arithmatex").forEach(function (el) {
    renderMathInElement(el, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  });
}
if (typeof document$ !== "undefined") {
  document$.subscribe(function () { renderTwogradMath(document.body); });
} else {
  document.addEventListener("DOMContentLoaded", function () { renderTwogradMath(document.body); });
}
