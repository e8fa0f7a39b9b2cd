// DOM building from nodes, never from HTML strings: every value from the API becomes a text node.
// The CSP forbids style attributes, so nothing here sets one; widths go through the CSSOM (el.style.x).

const SVG_NS = "http://www.w3.org/2000/svg";

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

function apply(el, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (name === "text") el.textContent = String(value);
    else if (name === "on") for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "style") throw new Error("inline styles are blocked by the CSP: use a class");
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  return el;
}

/** An HTML element: h("a", {href: "#/home", class: "x"}, "text", child, [more]). */
export function h(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

export function replace(el, ...children) {
  return append(clear(el), children);
}
