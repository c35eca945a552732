// Building elements with text set as text (never as HTML), so nothing the API returns can inject markup.

export function element(tag, properties = {}, ...children) {
  const node = Object.assign(document.createElement(tag), properties);
  node.append(...children);
  return node;
}
