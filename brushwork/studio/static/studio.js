// The canvas view as the page opens, before Alpine starts: no flash of the full form on a reload.
if (localStorage.getItem("brushwork-canvas") === "on") document.documentElement.dataset.canvas = "on";

// The studio page's state (Alpine.js). Everything it shows comes from the REST API or from
// server-rendered fragments (htmx); this file only wires the form, the live view and the keys.
function studio(engines) {
  return {
    engines,
    tabs: [
      { id: "create", label: "Create" }, { id: "queue", label: "Queue" }, { id: "gallery", label: "Gallery" },
      { id: "compare", label: "Compare" }, { id: "rate", label: "Rate" }, { id: "sweep", label: "Sweep" },
    ],
    tab: "create",
    engine: engines.length ? engines[0].name : "",
    params: {},
    contentRef: "example:tubingen.jpg",
    styleRefs: ["example:starry_night.jpg"],
    model: "",
    trainingRefs: ["example:tubingen.jpg"],  // a trainer's photos, picked from the library
    newModel: "",  // the name a trainer gives the model it makes
    library: [],
    models: [],
    error: "",
    live: {},
    source: null,
    compareA: null,
    compareB: null,
    pair: [],
    pairMessage: "",
    rated: 0,
    lightbox: { url: "", caption: "", zoomed: false },
    info: null,
    batch: 1,
    sweepX: { name: "", values: "" },
    sweepY: { name: "", values: "" },
    sweepId: null,
    sweepTimer: null,
    maskBrush: 32,
    maskInk: "white",
    maskDown: false,
    useMask: false,
    dark: false,
    canvas: false,  // the canvas view: the form a narrow column, the picture large
    canvasFit: false,  // in it, the picture scaled up to fill the window (else its real size, at most the window)
    modelMessage: "",

    async init() {
      const chosen = localStorage.getItem("brushwork-theme");
      if (chosen) document.documentElement.dataset.theme = chosen;
      const system = window.matchMedia("(prefers-color-scheme: dark)");
      this.dark = chosen ? chosen === "dark" : system.matches;
      system.addEventListener("change", (e) => {
        if (!localStorage.getItem("brushwork-theme")) this.dark = e.matches;  // follow the system until chosen
      });
      this.canvas = localStorage.getItem("brushwork-canvas") === "on";
      this.resetParams();
      await this.loadLibrary();
    },
    toggleCanvas(on = !this.canvas) {
      this.canvas = on;
      this.canvasFit = false;
      if (on) document.documentElement.dataset.canvas = "on";
      else delete document.documentElement.dataset.canvas;
      localStorage.setItem("brushwork-canvas", on ? "on" : "off");
      if (on) this.show("create");  // the canvas is the Create view's
    },
    // A gallery picture, large: the canvas view with the job in the live panel.
    viewLarge(jobId) {
      this.toggleCanvas(true);
      this.watch(jobId);
    },
    toggleTheme() {
      this.dark = !this.dark;
      document.documentElement.dataset.theme = this.dark ? "dark" : "light";
      localStorage.setItem("brushwork-theme", document.documentElement.dataset.theme);
    },
    current() {
      return this.engines.find((e) => e.name === this.engine) || { controls: [], styles: [0, 0], model_engines: [] };
    },
    // A fast model carries its own style: the video engine takes style images only with an AdaIN model.
    wantsStyles() {
      const model = this.models.find((m) => m.name === this.model);
      return this.current().styles[1] > 0 && !(this.clip() && model && model.engine === "fast");
    },
    clip() {
      return this.current().content_kind === "video";
    },
    trains() {
      return Boolean(this.current().makes_model);
    },
    // The video engine applies fast and AdaIN models; the others their own kind.
    fittingModels() {
      return this.models.filter((m) => this.current().model_engines.includes(m.engine));
    },
    async loadLibrary() {
      this.library = await (await fetch("/api/images")).json();
      this.models = await (await fetch("/api/models")).json();
      const fits = this.fittingModels();
      if (fits.length && !fits.some((m) => m.name === this.model)) this.model = fits[0].name;
    },
    resetParams(values = {}) {
      const params = {};
      for (const c of this.current().controls) {
        let v = c.name in values ? values[c.name] : c.default;
        params[c.name] = Array.isArray(v) ? v.join(",") : v === null || v === undefined ? "" : v;
      }
      this.params = params;
      const fits = this.fittingModels();
      if (fits.length && !fits.some((m) => m.name === this.model)) this.model = fits[0].name;
    },
    show(id) {
      this.tab = id;
      if (id === "sweep") this.pollSweep();
      if (id === "gallery") htmx.trigger(document.body, "refresh");
      if (id === "rate" && !this.pair.length) this.nextPair();
    },
    key(event) {
      const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(event.target.tagName);
      if (event.ctrlKey && event.key === "Enter") { event.preventDefault(); this.submit(); return; }
      if (typing || event.ctrlKey || event.altKey || event.metaKey) return;
      const n = parseInt(event.key, 10);
      if (n >= 1 && n <= this.tabs.length) { this.show(this.tabs[n - 1].id); return; }
      if (event.key === "c") { this.toggleCanvas(); return; }
      if (this.tab === "rate" && this.pair.length === 2) {
        if (event.key === "ArrowLeft") this.rate(0);
        else if (event.key === "ArrowRight") this.rate(1);
        else if (event.key === "s") this.nextPair();
      }
    },
    // Only what differs from the API's defaults goes into params, under the API's names.
    paramsJson() {
      const out = {};
      for (const c of this.current().controls) {
        const v = this.params[c.name];
        if (v === "" || v === null || v === undefined) continue;
        const given = c.kind === "int" || c.kind === "float" ? Number(v) : v;
        const dflt = Array.isArray(c.default) ? c.default.join(",") : c.default;
        if (given === dflt || String(given) === String(dflt)) continue;
        out[c.name] = given;
      }
      return JSON.stringify(out);
    },
    // A setting's name in words: style_blend_weights -> "style blend weights".
    words(name) {
      return name.replace(/_/g, " ");
    },
    // The mask painter: a canvas of the photo's size over it, black at first; strokes in white or black.
    contentUrl() {
      const file = this.$refs.contentFile && this.$refs.contentFile.files[0];
      if (file && !this.clip()) return URL.createObjectURL(file);
      return this.contentRef && !this.clip() ? `/api/images/${this.contentRef}` : "";
    },
    sizeMask() {
      const photo = this.$refs.maskPhoto, canvas = this.$refs.maskCanvas;
      if (!photo.naturalWidth) return;
      const scale = Math.min(1, 1024 / Math.max(photo.naturalWidth, photo.naturalHeight));
      const w = Math.round(photo.naturalWidth * scale), h = Math.round(photo.naturalHeight * scale);
      if (canvas.width === w && canvas.height === h && this.useMask) return;  // keep what was painted
      canvas.width = w;
      canvas.height = h;
      this.fillMask("black");
      this.useMask = false;
    },
    fillMask(colour) {
      const canvas = this.$refs.maskCanvas, ctx = canvas.getContext("2d");
      ctx.fillStyle = colour;
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    },
    invertMask() {
      const canvas = this.$refs.maskCanvas, ctx = canvas.getContext("2d");
      const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height);
      for (let i = 0; i < pixels.data.length; i += 4) {
        for (let c = 0; c < 3; c++) pixels.data[i + c] = 255 - pixels.data[i + c];
      }
      ctx.putImageData(pixels, 0, 0);
      this.useMask = true;
    },
    maskStroke(event, start) {
      if (start) this.maskDown = true;
      if (!this.maskDown) return;
      const canvas = this.$refs.maskCanvas, box = canvas.getBoundingClientRect();
      const scale = canvas.width / box.width;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = this.maskInk;
      ctx.beginPath();
      ctx.arc((event.clientX - box.left) * scale, (event.clientY - box.top) * scale, (this.maskBrush / 2) * scale,
              0, 2 * Math.PI);
      ctx.fill();
      this.useMask = true;
    },
    async addModel() {
      const weights = this.$refs.modelWeights.files[0], description = this.$refs.modelDescription.files[0];
      if (!weights || !description) {
        this.modelMessage = "choose the model's .safetensors and its .json";
        return;
      }
      const form = new FormData();
      form.append("model", weights);
      form.append("description", description);
      const response = await fetch("/api/models", { method: "POST", body: form });
      const body = await response.json().catch(() => ({}));
      this.modelMessage = response.ok ? "" : body.detail || `adding the model: ${response.status}`;
      if (!response.ok) return;
      await this.loadLibrary();
      this.model = body.name;
    },
    hasSeed() {
      return this.current().controls.some((c) => c.name === "seed");
    },
    randomSeed() {
      this.params.seed = Math.floor(Math.random() * 2 ** 31);
    },
    // Settings a sweep can vary: any but on/off switches.
    sweepable() {
      return this.current().controls.filter((c) => c.kind !== "bool");
    },
    sweepAxis(axis) {
      const control = this.current().controls.find((c) => c.name === axis.name);
      if (!control) return null;
      const numeric = control.kind === "int" || control.kind === "float";
      const values = axis.values.split(",").map((v) => v.trim()).filter((v) => v !== "")
        .map((v) => (numeric ? Number(v) : v));
      return { name: axis.name, values };
    },
    sweepSpec() {
      const spec = {};
      const x = this.sweepAxis(this.sweepX), y = this.sweepAxis(this.sweepY);
      if (x) spec.x = x;
      if (y) spec.y = y;
      if (Number(this.batch) > 1) spec.batch = Number(this.batch);
      return Object.keys(spec).length ? spec : null;
    },
    pollSweep() {
      clearTimeout(this.sweepTimer);
      if (!this.sweepId || this.tab !== "sweep") return;
      htmx.ajax("GET", `/ui/sweep/${this.sweepId}`, { target: "#sweep-grid", swap: "innerHTML" }).then(() => {
        const progress = document.querySelector("#sweep-progress");
        const [done, , total] = progress ? progress.textContent.split(" ") : [];
        if (done !== total) this.sweepTimer = setTimeout(() => this.pollSweep(), 1000);
      });
    },
    async submit() {
      this.error = "";
      const e = this.current();
      const styleCount = this.styleRefs.length + (this.$refs.styleFiles ? this.$refs.styleFiles.files.length : 0);
      if (this.wantsStyles() && styleCount < e.styles[0]) {
        this.error = "pick or upload a painting to take the style from";
        return;
      }
      const form = new FormData();
      form.append("engine", this.engine);
      form.append("params", this.paramsJson());
      if (this.trains()) {
        const photos = this.$refs.trainingFiles.files;
        if (!photos.length && !this.trainingRefs.length) {
          this.error = "pick or upload the photos to train on";
          return;
        }
        for (const file of photos) form.append("content", file);
        for (const ref of this.trainingRefs) form.append("content_ref", ref);
        form.append("model", this.newModel.trim());
      } else if (e.needs_content) {
        const file = this.$refs.contentFile.files[0];
        if (file && (this.clip() || !this.contentRef)) form.append("content", file);
        else if (this.contentRef) form.append("content_ref", this.contentRef);  // a clip: restored from a job
      }
      if (this.wantsStyles()) {
        for (const file of this.$refs.styleFiles.files) form.append("style", file);
        for (const ref of this.styleRefs) form.append("style_ref", ref);
      }
      if (e.needs_model && this.model) form.append("model", this.model);
      if (e.takes_masks && this.useMask) {
        const blob = await new Promise((done) => this.$refs.maskCanvas.toBlob(done, "image/png"));
        form.append("mask", blob, "painted-mask.png");
      }
      const sweep = this.sweepSpec();
      if (sweep) form.append("sweep", JSON.stringify(sweep));
      const response = await fetch(sweep ? "/api/sweeps" : "/api/jobs", { method: "POST", body: form });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        this.error = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || response.status);
        return;
      }
      this.loadLibrary();
      if (sweep) {
        this.sweepId = body.id;
        this.show("sweep");
        return;
      }
      this.watch(body.id);
    },
    watch(id) {
      if (this.source) this.source.close();
      this.live = { id, status: "queued", progress: 0 };
      const source = new EventSource(`/api/jobs/${id}/events`);
      this.source = source;
      const update = (event) => {
        const job = JSON.parse(event.data);
        const video = job.media.length && job.media[0] === "video";
        this.live = { id, status: job.status, progress: job.progress, eta: job.eta, error: job.error,
                      preview: job.preview, image: job.images.length && !video ? job.images[0] : null,
                      video: video ? job.images[0] : null, poster: video ? job.posters[0] : null };
      };
      source.addEventListener("progress", update);
      for (const end of ["done", "failed", "cancelled"]) {
        source.addEventListener(end, (event) => {
          update(event);
          source.close();
          htmx.trigger(document.body, "refresh");
          if (end === "done") this.loadLibrary();  // a training job's model joins the pickers
        });
      }
    },
    async cancel(id) {
      await fetch(`/api/jobs/${id}`, { method: "DELETE" });
    },
    // One-click restore: a finished job's engine, inputs and settings back into the form.
    async restore(jobId) {
      const job = await (await fetch(`/api/jobs/${jobId}`)).json();
      await this.loadLibrary();
      this.applySettings(job.engine, job.params, job.inputs.content, job.inputs.styles, job.inputs.model,
                         job.inputs.contents);
    },
    applySettings(engine, params, contentRef, styleRefs, model, trainingRefs) {
      this.engine = engine;
      this.resetParams(params);
      this.contentRef = contentRef || "";
      this.styleRefs = styleRefs || [];
      if (this.trains()) {  // a trainer's model is the one it made: the same name again would be refused
        this.trainingRefs = (trainingRefs || []).filter((ref) => this.library.some((img) => img.ref === ref));
        this.newModel = model ? `${model}-2` : "";
      } else if (model) this.model = model;
      if (this.$refs.trainingFiles) this.$refs.trainingFiles.value = "";
      if (this.$refs.contentFile) this.$refs.contentFile.value = "";
      if (this.$refs.styleFiles) this.$refs.styleFiles.value = "";
      // The live panel shows what the restored settings will paint next, not the last job's picture.
      if (!["queued", "running"].includes(this.live.status)) this.live = {};
      this.show("create");
    },
    // PNG Info: a picture dropped anywhere on the page (file fields keep their own drops) or chosen.
    dragOver(event) {
      if (!event.target.matches("input[type=file]")) event.preventDefault();
    },
    dropped(event) {
      if (event.target.matches("input[type=file]") || !event.dataTransfer.files.length) return;
      event.preventDefault();
      this.pngInfo(event.dataTransfer.files[0]);
    },
    async pngInfo(file) {
      if (!file) return;
      const form = new FormData();
      form.append("image", file);
      const response = await fetch("/api/png-info", { method: "POST", body: form });
      const body = await response.json().catch(() => ({}));
      this.info = response.ok ? { ...body, name: file.name }
        : { error: body.detail || `PNG info: ${response.status}`, name: file.name };
      this.show("create");
    },
    sendInfoToForm() {
      const i = this.info;
      this.applySettings(i.engine, i.params, i.content_ref, i.style_refs, i.model);
      this.info = null;
    },
    openLightbox(url, caption) {
      this.lightbox = { url, caption: caption.replace(/\s+/g, " ").trim(), zoomed: false };
      this.$refs.lightbox.showModal();
    },
    async setFavourite(jobId, on) {
      await fetch(`/api/jobs/${jobId}/favourite`, {
        method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ favourite: on }),
      });
      htmx.trigger(document.body, "refresh");
    },
    // Deleted jobs go to the data folder's trash/, never straight off the disk.
    async deleteJob(jobId) {
      if (!window.confirm("Delete this picture? Its file moves to the studio's trash folder.")) return;
      const response = await fetch(`/api/jobs/${jobId}`, { method: "DELETE" });
      if (!response.ok) window.alert((await response.json().catch(() => ({}))).detail || `delete: ${response.status}`);
      htmx.trigger(document.body, "refresh");
    },
    async setCompare(side, jobId, url) {
      const job = await (await fetch(`/api/jobs/${jobId}`)).json();
      const label = `${job.engine}: ${job.caption}`;
      const entry = { url, label, job };
      if (side === "A") this.compareA = entry; else this.compareB = entry;
      if (this.compareA && this.compareB) this.show("compare");
    },
    compareRows() {
      if (!this.compareA || !this.compareB) return [];
      const a = this.compareA.job.record ? this.compareA.job.record.parameters : this.compareA.job.params;
      const b = this.compareB.job.record ? this.compareB.job.record.parameters : this.compareB.job.params;
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
      // Values as a person writes them: lists with commas, text without quotes.
      const fmt = (v) => (v === undefined || v === null ? "" : Array.isArray(v) ? v.map(fmt).join(", ")
        : typeof v === "object" ? JSON.stringify(v) : String(v));
      return [["engine", this.compareA.job.engine, this.compareB.job.engine],
              ["inputs", this.compareA.job.caption, this.compareB.job.caption],
              ...keys.map((k) => [this.words(k), fmt(a[k]), fmt(b[k])])];
    },
    async nextPair() {
      const response = await fetch("/api/ratings/pair");
      const body = await response.json();
      this.pair = response.ok ? body : [];
      this.pairMessage = response.ok ? "" : body.detail;
    },
    async rate(i) {
      const [winner, loser] = i ? [this.pair[1], this.pair[0]] : [this.pair[0], this.pair[1]];
      const response = await fetch("/api/ratings", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ winner: winner.id, loser: loser.id }),
      });
      if (response.ok) this.rated += 1;
      await this.nextPair();
    },
    fmtEta(seconds) {
      return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
    },
  };
}
