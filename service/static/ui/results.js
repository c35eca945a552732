// A finished job's files: videos that play in the page, montages, a download link for every file.
import { element } from "./dom.js";
import { bytes } from "./format.js";

const FORMAT_NAMES = { "ome-tiff": "OME-TIFF", "imagej-tiff": "ImageJ TIFF", mp4: "MP4", gif: "GIF", png: "PNG" };

/** One link per file; the links are short-lived and signed, so they carry no key. */
export function downloadLinks(results) {
  const list = element("ul", { className: "downloads" });
  for (const result of results) {
    const link = element("a", { href: result.url, download: result.filename }, result.filename);
    const what = `${FORMAT_NAMES[result.format] || result.format} ${result.role}, ${bytes(result.bytes)}`;
    list.append(element("li", {}, link, element("span", { className: "note" }, ` ${what}`)));
  }
  return list;
}

function videoStem(filename) {
  const match = filename.match(/^(.*_\d{3})\./);
  return match ? match[1] : null;
}

/** Each generated video (MP4 plays, looping; else a GIF) with its own downloads, and the montage beside. */
export function showGenerated(container, results) {
  const videos = new Map();
  for (const result of results.filter((r) => r.role === "video")) {
    const stem = videoStem(result.filename) || result.filename;
    videos.set(stem, [...(videos.get(stem) || []), result]);
  }
  const gallery = element("div", { className: "gallery" });
  for (const [stem, files] of videos) {
    const figure = element("figure", { className: "video" });
    const mp4 = files.find((f) => f.format === "mp4");
    const gif = files.find((f) => f.format === "gif");
    if (mp4) {
      figure.append(element("video", {
        src: mp4.url, loop: true, muted: true, autoplay: true, controls: true, playsInline: true, preload: "auto",
        title: `${stem} (MP4)`,
      }));
    } else if (gif) {
      figure.append(element("img", { src: gif.url, alt: `${stem} (GIF)` }));
    }
    figure.append(element("figcaption", {}, stem), downloadLinks(files));
    gallery.append(figure);
  }
  const previews = results.filter((r) => r.role !== "video");
  for (const preview of previews.filter((r) => r.format === "png")) {
    gallery.append(element("figure", { className: "montage" },
      element("img", { src: preview.url, alt: "montage of the generated videos: rows are videos, columns frames" }),
      element("figcaption", {}, "Montage: rows are videos, columns frames")));
  }
  container.replaceChildren(gallery);
  if (previews.length) container.append(downloadLinks(previews));
}

/** A training's pictures (sample montage, loss curves) and their downloads. */
export function showTrained(container, results) {
  const gallery = element("div", { className: "gallery" });
  for (const result of results.filter((r) => r.format === "png")) {
    const what = result.role === "montage" ? "Samples of the new version: rows are latents, columns frames"
      : "Losses: the critics' estimates and the generator loss per step";
    gallery.append(element("figure", { className: "montage" },
      element("img", { src: result.url, alt: what }), element("figcaption", {}, what)));
  }
  container.replaceChildren(gallery, downloadLinks(results));
}
