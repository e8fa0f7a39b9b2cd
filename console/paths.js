// A definition (an audience's, a campaign's) as data: the API's field paths ("include.all[1].in",
// "steps[0].send.template.body") read and written, and the element ids the errors of a path are shown beside.

/** "include.all[1].in" as ["include", "all", 1, "in"]. */
export function parsePath(path) {
  const out = [];
  for (const part of path.split(".")) {
    const match = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!match) {
      out.push(part);
      continue;
    }
    if (match[1]) out.push(match[1]);
    for (const index of match[2].matchAll(/\[(\d+)\]/g)) out.push(Number(index[1]));
  }
  return out;
}

export function getAt(object, path) {
  let here = object;
  for (const key of parsePath(path)) {
    if (here === null || typeof here !== "object") return undefined;
    here = here[key];
  }
  return here;
}

export function setAt(object, path, value) {
  const keys = parsePath(path);
  let here = object;
  keys.slice(0, -1).forEach((key, i) => {
    if (here[key] === null || typeof here[key] !== "object") here[key] = typeof keys[i + 1] === "number" ? [] : {};
    here = here[key];
  });
  here[keys.at(-1)] = value;
}

/** The id of the input a field path is edited in (its error element is `<id>-error`). */
export function fieldId(path) {
  return `field-${path.replace(/[^A-Za-z0-9]+/g, "-").replace(/-+$/, "")}`;
}

export function pretty(definition) {
  return JSON.stringify(definition, null, 2);
}
