"""Data: choose a dataset, check it, split it, preview the augmentation training will use, and
ask the strategy advisor which kind of transfer learning fits it.

Remembers `dataset` (a folder), `augment` (an AugmentConfig as a dict) and, once asked,
`advised` (the advisor's TrainConfig fields) in session state for the Train page.
"""

import dataclasses
import shutil
import time
from pathlib import Path

import streamlit as st

from core import advisor, config
from core.backbones import BACKBONES, WeightsUnavailableError
from core.catalog import dataset_signature, looks_like_dataset, unusable_folders
from core.config import FILL_MODES, IMBALANCE_WARNING_RATIO, REFERENCE_AUGMENT, AugmentConfig, field_limits
from core.data import DatasetError, DatasetReport, scan_dataset, split_dataset
from core.demo import workspace
from core.exclusions import FINDINGS_FILE, health_dir, load_exclusions, relative_path, save_exclusions
from core.health import read_findings
from core.launch import run_health
from core.plots import split_counts_figure
from core.preview import augment_batch, augment_repeated, load_batch, preview_paths
from core.reports import describe_augment
from core.runs import RunError
from core.text import code, md
from core.uploads import (
    MAX_UNCOMPRESSED_BYTES,
    UploadError,
    delete_upload,
    extract_dataset_upload,
    rename_upload,
    safe_name,
    unique_path,
    upload_folders,
)
from core.url_state import augment_from_param, augment_param, dataset_from_param, dataset_param

SOURCES = ("The bundled sample", "A folder in the data folder", "Upload a zip")
PREVIEW_COUNT, PREVIEW_SIZE = 8, 160
HEALTH_KINDS = {"leakage": "Leakage", "duplicate": "Duplicates", "label_issue": "Label issues",
                "outlier": "Outliers"}  # fmt: skip
HEALTH_BACKBONES = ("mobilenet_v2", "mobilenet_v2_0.35", "mobilenet_0.25", "efficientnet_b0", "resnet50")
HEALTH_SHOWN = 30  # findings drawn per kind
HEALTH_THUMBNAIL_PX = 200
AUGMENT_SLIDERS = {  # field: (label, step, help); the range is the config's (field_limits)
    "rotation": ("Rotation (degrees)", 5.0, "rotate by up to +/- this many degrees"),
    "width_shift": ("Width shift", 0.05, "shift sideways by up to this fraction of the width"),
    "height_shift": ("Height shift", 0.05, "shift up or down by up to this fraction of the height"),
    "shear": ("Shear", 0.05, "slant by up to this shear factor"),
    "zoom": ("Zoom", 0.05, "zoom in or out by up to this fraction"),
}


@st.cache_data(show_spinner=False, max_entries=16)
def cached_scan(path: str, signature: float) -> DatasetReport:
    """`scan_dataset`, redone only when a class folder changed (`signature` is their newest mtime)."""
    return scan_dataset(path)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_repeated(path: str, augment: dict, seed: int):
    return augment_repeated(path, AugmentConfig(**augment), PREVIEW_COUNT, PREVIEW_SIZE, seed)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_batch(paths: tuple[str, ...], augment: dict, seed: int):
    return augment_batch(load_batch(list(paths), PREVIEW_SIZE), AugmentConfig(**augment), seed)


@st.cache_data(show_spinner=False, max_entries=16)
def cached_advice(path: str, signature: float) -> advisor.Advice:
    """`core.advisor.advise`, redone only for another dataset or when a class folder changed."""
    return advisor.advise(path)


def restore_choice() -> None:
    """Point the dataset widgets, before they draw, at a folder chosen by code (an upload, a
    split) or remembered from an earlier visit (Streamlit forgets widgets of pages left)."""
    pending = st.session_state.pop("pending_dataset", None)
    remembered = st.session_state.get("dataset")
    if not remembered:  # a reload: the URL remembers the dataset and the augmentation
        allowed = workspace(st.session_state).datasets()  # in the demo, never another visitor's
        found = dataset_from_param(
            st.query_params.get("dataset"), config.DATA_ROOT, config.SAMPLE_DATASET, allowed
        )
        remembered = str(found) if found else None
        if st.session_state.get("augment") is None:
            st.session_state["augment"] = augment_from_param(st.query_params.get("augment"))
    if pending is None and "source" not in st.session_state and remembered:
        path = Path(remembered)
        if path != config.SAMPLE_DATASET and path.is_relative_to(config.DATA_ROOT):
            pending = str(path.relative_to(config.DATA_ROOT))
    if pending:
        st.session_state["source"] = SOURCES[1]
        st.session_state["folder"] = pending
    elif remembered and Path(remembered) == config.SAMPLE_DATASET:
        st.session_state.setdefault("source", SOURCES[0])


def dataset_ui() -> Path | None:
    """Widgets choosing the dataset; returns its folder, or None while there is none."""
    source = st.radio("Dataset", SOURCES, key="source", horizontal=True)
    if source == SOURCES[0]:
        st.caption(f"100 photos of horses and humans, bundled with the app: {code(config.SAMPLE_DATASET)}")
        return config.SAMPLE_DATASET
    if source == SOURCES[1]:
        return folder_ui()
    return upload_ui()


def folder_ui() -> Path | None:
    folders = workspace(st.session_state).datasets()  # in the demo, never another visitor's
    if not folders:
        st.info(
            f"No dataset folders in `{config.DATA_ROOT}` yet. Put one there (one folder of images per "
            "class), upload a zip, or download the full horse-or-human set on the Home page."
        )
        return None
    labels = [str(p.relative_to(config.DATA_ROOT)) for p in folders]
    if st.session_state.get("folder") not in labels:
        st.session_state.pop("folder", None)
    choice = st.selectbox("Folder", labels, key="folder", help=f"dataset folders found in {config.DATA_ROOT}")
    unusable_ui()
    return config.DATA_ROOT / choice


def unusable_ui() -> None:
    """Folders with images that cannot train, and why: not silently missing from the list."""
    space = workspace(st.session_state)
    root = space.data_dir if space.isolated else config.DATA_ROOT  # the demo: this visitor's own
    containers = (space.uploads_dir, space.splits_dir)
    unusable = unusable_folders(root, exclude=(config.SAMPLE_DATASET,), containers=containers)
    if unusable:
        with st.expander(f"Folders that cannot train ({len(unusable)})", icon=":material/block:"):
            for folder, reason in unusable:
                st.markdown(f"- {code(folder.relative_to(root))}: {md(reason)}")


def upload_ui() -> Path | None:
    upload = st.file_uploader(
        "A zip of class folders (cats/..., dogs/...), or of train/ and validation/ folders",
        type="zip",
    )
    space = workspace(st.session_state)
    uploads, free = space.uploads_dir, space.free_bytes()
    manage_uploads_ui(uploads)  # in the demo, this visitor's own uploads only
    if upload is None:
        return None
    limit = MAX_UNCOMPRESSED_BYTES if free is None else min(free, MAX_UNCOMPRESSED_BYTES)
    with st.spinner("Unpacking the zip safely..."):
        try:
            folder = extract_dataset_upload(upload, uploads, upload.name, max_bytes=limit)
        except UploadError as exc:
            st.error(f"That zip cannot be used: {md(exc)}")
            return None
    unusable = _unusable(folder)
    if unusable:  # removed at once: an unusable upload must not keep taking disk space
        shutil.rmtree(uploads / folder.relative_to(uploads).parts[0], ignore_errors=True)
        st.error(f"That zip cannot be used: {md(unusable)}")
        return None
    st.session_state["pending_dataset"] = str(folder.relative_to(config.DATA_ROOT))
    top = folder.relative_to(uploads).parts[0]
    taken = (
        ""
        if top == safe_name(Path(upload.name).stem, "upload")
        else " (that name was taken: rename it below)"
    )
    st.session_state["flash"] = f"Unpacked {md(upload.name)} into {code(folder)}{taken}."
    st.rerun()


def manage_uploads_ui(uploads: Path) -> None:
    """Rename or delete earlier uploads."""
    folders = upload_folders(uploads)
    if not folders:
        return
    with st.expander(f"Your uploads ({len(folders)}): rename or delete", icon=":material/folder_managed:"):
        for folder in folders:
            name, rename, delete = st.columns([3, 1, 1], vertical_alignment="bottom")
            new_name = name.text_input(
                f"Name of {code(folder.name)}", folder.name, key=f"upload_name:{folder.name}"
            )
            if rename.button("Rename", key=f"upload_rename:{folder.name}", disabled=new_name == folder.name):
                _upload_action(
                    rename_upload, uploads, folder, new_name, f"Renamed {md(folder.name)} to {md(new_name)}."
                )
            if delete.button("Delete", key=f"upload_delete:{folder.name}", icon=":material/delete:"):
                _upload_action(delete_upload, uploads, folder, None, f"Deleted the upload {md(folder.name)}.")


def _upload_action(action, uploads: Path, folder: Path, new_name: str | None, done: str) -> None:
    try:
        action(uploads, folder, *([new_name] if new_name is not None else []))
    except (UploadError, OSError) as exc:
        st.error(f"Cannot change {md(folder.name)}: {md(exc)}")
        return
    if st.session_state.get("dataset", "").startswith(str(folder)):
        st.session_state.pop("dataset", None)  # it moved or is gone
        st.session_state.pop("folder", None)
    st.session_state["flash"] = done
    st.rerun()


def _unusable(folder: Path) -> str | None:
    """Why an unpacked upload cannot be trained on, or None when it can."""
    if not looks_like_dataset(folder):
        return (
            "it holds no dataset: it needs one folder of images per class (at least two), "
            "or train/ and validation/ folders holding those."
        )
    try:
        cached_scan(str(folder), dataset_signature(folder))
    except DatasetError as exc:
        return str(exc)
    return None


def scan_ui(dataset: Path) -> DatasetReport | None:
    with st.spinner("Checking every image with Pillow..."):
        try:
            return cached_scan(str(dataset), dataset_signature(dataset))
        except DatasetError as exc:
            st.error(f"This folder cannot be used for training: {md(exc)}")
            return None


def report_ui(report: DatasetReport) -> None:
    counts = report.counts()
    total = sum(sum(c.values()) for c in counts.values())
    a, b, c = st.columns(3)
    a.metric("Classes", len(report.class_names))
    b.metric("Valid images", f"{total:,}")
    c.metric("Skipped files", len(report.skipped))
    if report.imbalance_ratio() > IMBALANCE_WARNING_RATIO:
        st.warning(
            f"The classes are imbalanced: the largest has {report.imbalance_ratio():.1f}x the images of "
            "the smallest. Accuracy can look good while the small class is mostly wrong."
        )
    left, right = st.columns([2, 3])
    left.dataframe(
        {"class": report.class_names, **{split: list(c.values()) for split, c in counts.items()}},
        hide_index=True,
    )
    right.plotly_chart(split_counts_figure(counts), key="counts_chart")
    sizes = report.sizes.most_common(8)
    st.caption(
        f"Image sizes ({len(report.sizes)} different): "
        + ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes)
        + (" ..." if len(report.sizes) > len(sizes) else "")
        + ". Training resizes every image to the model's input size."
    )
    if report.skipped:
        with st.expander(f"Skipped files ({len(report.skipped)})"):
            root = Path(report.root)
            rows = [{"file": _relative(s.path, root), "reason": s.reason} for s in report.skipped]
            st.dataframe(rows, hide_index=True)


def _relative(path: str, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def split_ui(dataset: Path, report: DatasetReport) -> None:
    if report.is_split:
        st.info(f"This dataset is split already ({', '.join(report.splits)}): training uses its splits.")
        return
    st.write(
        "Training splits an unsplit dataset by itself (its *validation split* setting). Split it here "
        "to keep a test set aside, or to fix the split for several runs."
    )
    with st.form("split"):
        a, b, c = st.columns(3)
        val = a.slider("Validation fraction", 0.05, 0.5, 0.2, 0.05)
        test = b.slider("Test fraction", 0.0, 0.4, 0.0, 0.05, help="0: no test split")
        seed = int(c.number_input("Seed", 0, 2**31 - 1, 42))
        name = st.text_input("New folder name", f"{dataset.name}-split")
        submitted = st.form_submit_button("Split into a new folder", icon=":material/call_split:")
    if not submitted:
        return
    output = unique_path(workspace(st.session_state).splits_dir, safe_name(name, "split"))
    with st.spinner(f"Splitting into {output}..."):
        try:
            split_dataset(report, output, val, seed, test_split=test)
        except DatasetError as exc:
            st.error(f"Cannot split: {md(exc)}")
            return
    st.session_state["pending_dataset"] = str(output.relative_to(config.DATA_ROOT))
    st.session_state["flash"] = f"Split into {code(output)}: the Train page now uses it."
    st.rerun()


def augment_ui() -> AugmentConfig:
    """Sliders for every augmentation knob; starts from the remembered config."""
    saved = st.session_state.get("augment") or {}
    for field, value in dataclasses.asdict(AugmentConfig(**saved)).items():
        st.session_state.setdefault(f"aug_{field}", value)
    buttons = st.container(horizontal=True)
    buttons.button("Use the reference recipe", on_click=_set_augment, args=(REFERENCE_AUGMENT,))
    buttons.button("No augmentation", on_click=_set_augment, args=(AugmentConfig(),))
    values = {}
    columns = st.columns(3)
    for i, (field, (label, step, help_text)) in enumerate(AUGMENT_SLIDERS.items()):
        limits = field_limits(f"augment.{field}")
        values[field] = columns[i % 3].slider(
            label,
            float(limits.low),
            float(limits.high),
            step=step,
            format="%d" if step >= 1 else "%.2f",
            key=f"aug_{field}",
            help=help_text,
        )
    values["fill_mode"] = columns[2].selectbox(
        "Fill mode", FILL_MODES, key="aug_fill_mode", help="how to fill pixels moved in from outside"
    )
    values["horizontal_flip"] = columns[0].checkbox("Horizontal flip", key="aug_horizontal_flip")
    return AugmentConfig(**values)


def _set_augment(augment: AugmentConfig) -> None:
    for field, value in dataclasses.asdict(augment).items():
        st.session_state[f"aug_{field}"] = value


def preview_ui(report: DatasetReport, augment: AugmentConfig) -> None:
    seed = st.session_state.setdefault("preview_seed", 0)
    if st.button("Regenerate", icon=":material/refresh:"):
        seed = st.session_state["preview_seed"] = int(time.time() * 1000) % 2**31
    samples = preview_paths(report, PREVIEW_COUNT, seed)
    settings = dataclasses.asdict(augment)
    with st.spinner("Augmenting (TensorFlow loads the first time, a few seconds)..."):
        repeated = cached_repeated(samples[0][0], settings, seed)
        batch = cached_batch(tuple(p for p, _ in samples), settings, seed)
    st.markdown(f"**One image, augmented {PREVIEW_COUNT} times** ({md(Path(samples[0][0]).name)})")
    image_row(list(repeated))
    st.markdown("**A random augmented batch**")
    image_row(list(batch), [name for _, name in samples])


def strategy_ui(dataset: Path) -> None:
    """The advisor: measure the dataset, recommend a strategy, hand its settings to Train."""
    st.write(
        "Which kind of transfer learning fits this dataset depends on two things: how many "
        "images each class has, and how much the images look like ImageNet's photos. The "
        "advisor measures both and recommends a recipe."
    )
    key = (str(dataset), dataset_signature(dataset))
    if st.button("Recommend a strategy", icon=":material/psychology:"):
        st.session_state["advice_for"] = key
    if st.session_state.get("advice_for") != key:
        return
    try:
        with st.spinner("Measuring: a pretrained MobileNetV2 looks at a sample of the images..."):
            advice = cached_advice(*key)
    except WeightsUnavailableError as exc:
        st.session_state.pop("advice_for")  # asked again only by the button
        st.error(str(exc))
        return
    except (DatasetError, ValueError) as exc:
        st.session_state.pop("advice_for")
        st.error(f"The advisor cannot measure this dataset: {md(exc)}")
        return
    advice_ui(dataset, advice)


def advice_ui(dataset: Path, advice: advisor.Advice) -> None:
    st.success(f"Recommended: **{advice.strategy}**", icon=":material/recommend:")
    a, b, c = st.columns(3)
    a.metric(
        "Smallest class",
        f"{advice.images_per_class_min:,} images",
        help=f"the dataset is {advice.size_label}",
    )
    b.metric("Mean per class", f"{advice.images_per_class_mean:,.0f} images")
    c.metric(
        "Similarity to ImageNet",
        f"{advice.similarity:.2f}",
        help=f"{advice.similarity_label}; 1 = ImageNet's top features serve these classes best",
    )
    st.caption(
        f"Size: **{advice.size_label}** · images: **{advice.similarity_label}** to ImageNet's. "
        f"Measured as the {advice.similarity_method}."
    )
    st.write(advice.explanation)
    left, right = st.columns(2)
    with left.expander("Images per class"):
        st.dataframe([{"class": c, "images": n} for c, n in advice.counts.items()], hide_index=True)
    with right.expander("The settings it recommends"):
        st.json(advice.preset)
    st.button(
        "Use this on the Train page",
        type="primary",
        icon=":material/input:",
        on_click=_use_advice,
        args=(dataset, advice),
    )
    if st.session_state.get("advised", {}).get("dataset") == str(dataset):
        st.page_link("pages/train.py", label="The Train page opens with it", icon=":material/model_training:")


def _use_advice(dataset: Path, advice: advisor.Advice) -> None:
    st.session_state["advised"] = {
        "dataset": str(dataset),
        "dataset_name": dataset.name,
        "strategy": advice.strategy,
        "preset": dict(advice.preset),
    }
    st.session_state["preset_default"] = "advisor"


def health_ui(dataset: Path, report: DatasetReport) -> None:
    """Run `core.health` on the dataset, show each kind of finding as a gallery, and record the
    user's decisions (exclude, move to a class) in the project's data folder."""
    st.write(
        "Finds photos that are in the dataset twice, photos shared between train and validation "
        "(which inflate accuracy), photos that look like another class than their folder, and "
        "photos unlike any other. Decisions are saved in the project's data folder: **your "
        "dataset folder is never changed**, and the next training leaves out or moves the photos."
    )
    findings_file = health_dir(dataset, workspace(st.session_state).data_dir) / FINDINGS_FILE
    a, b = st.columns(2)
    backbone = a.selectbox(
        "Backbone", HEALTH_BACKBONES, key="health_backbone", help="as training's: its embeddings are reused"
    )
    default = BACKBONES[backbone].default_size
    size = int(b.number_input("Image size", 32, 1024, default, key=f"health_size_{backbone}"))
    if st.button("Check data health", icon=":material/health_and_safety:"):
        with st.spinner("Embedding every photo and looking for problems (a separate process)..."):
            try:
                lines = run_health(dataset, backbone, size)
            except RunError as exc:
                st.error(f"The health check failed: {exc}")
                return
        findings_file.parent.mkdir(parents=True, exist_ok=True)
        findings_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not findings_file.is_file():
        st.info("No health check of this dataset yet.")
        return
    findings, summary = read_findings(findings_file.read_text(encoding="utf-8").splitlines())
    counts = summary.get("findings", {})
    st.caption(
        f"Checked {summary.get('images', '?')} photos with {summary.get('backbone', '?')} at "
        f"{summary.get('image_size', '?')} px in {summary.get('seconds', '?')} s."
    )
    exclusions = load_exclusions(dataset, workspace(st.session_state).data_dir)
    st.caption(
        f"Decided so far: {len(exclusions.excluded)} photo(s) left out, {len(exclusions.relabelled)} moved."
    )
    tabs = st.tabs([f"{HEALTH_KINDS[kind]} ({counts.get(kind, 0)})" for kind in HEALTH_KINDS])
    for tab, kind in zip(tabs, HEALTH_KINDS):
        with tab:
            of_kind = [f for f in findings if f["kind"] == kind]
            if not of_kind:
                st.success(f"No {HEALTH_KINDS[kind].lower()} found.")
            for index, finding in enumerate(of_kind[:HEALTH_SHOWN]):
                finding_ui(dataset, report, finding, f"{kind}_{index}", exclusions)
            if len(of_kind) > HEALTH_SHOWN:
                st.caption(f"... and {len(of_kind) - HEALTH_SHOWN} more (`python -m core.health` lists all).")


def finding_ui(dataset: Path, report: DatasetReport, finding: dict, key: str, exclusions) -> None:
    """One finding: its photos side by side, each with an "exclude" box (and "move" for labels)."""
    with st.container(border=True):
        st.caption(md(finding_caption(finding)))
        columns = st.columns(max(len(finding["files"]), 3)) if len(finding["files"]) <= 6 else st.columns(6)
        for i, file in enumerate(finding["files"][:6]):
            relative = relative_path(file, dataset)
            column = columns[i]
            thumb = cached_thumbnail(file)
            if thumb is not None:
                column.image(thumb, caption=relative, width="stretch")
            box = f"exclude_{key}_{i}"
            column.checkbox(
                "Exclude from training",
                value=relative in exclusions.excluded,
                key=box,
                on_change=_decide,
                args=(dataset, relative, "exclude", box),
            )
            target = finding.get("suggested")
            if finding["kind"] == "label_issue" and target in report.class_names:
                box = f"move_{key}_{i}"
                column.checkbox(
                    f"Move to {target}",
                    value=exclusions.relabelled.get(relative) == target,
                    key=box,
                    on_change=_decide,
                    args=(dataset, relative, target, box),
                )


def finding_caption(finding: dict) -> str:
    kind, score = finding["kind"], finding["score"]
    if kind in ("duplicate", "leakage"):
        same = "identical files" if finding.get("exact") else f"similarity {score:.3f}"
        where = " across " + " / ".join(dict.fromkeys(finding.get("splits", []))) if kind == "leakage" else ""
        label = f", all {finding['label']}" if finding.get("label") else ", with different labels"
        return f"{len(finding['files'])} copies{where} ({same}{label})"
    if kind == "label_issue":
        return f"In {finding['label']}, but looks like {finding['suggested']} (label quality {score:.2f})"
    return f"Unlike every other photo (in {finding['label']}; {score:.1f} deviations out)"


def _decide(dataset: Path, relative: str, action: str, key: str) -> None:
    """Record one checkbox in the exclusions file (the dataset folder is never touched)."""
    exclusions = load_exclusions(dataset, workspace(st.session_state).data_dir)
    chosen = st.session_state[key]
    if action == "exclude":
        excluded = set(exclusions.excluded)
        excluded = excluded | {relative} if chosen else excluded - {relative}
        exclusions.excluded = sorted(excluded)
    elif chosen:
        exclusions.relabelled[relative] = action
    else:
        exclusions.relabelled.pop(relative, None)
    save_exclusions(dataset, exclusions, workspace(st.session_state).data_dir)


@st.cache_data(show_spinner=False, max_entries=512)
def cached_thumbnail(path: str):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((HEALTH_THUMBNAIL_PX, HEALTH_THUMBNAIL_PX))
            return image.convert("RGB")
    except OSError:
        return None  # gone since the check


def image_row(images: list, captions: list[str] | None = None) -> None:
    for i, column in enumerate(st.columns(len(images), gap="small")):
        column.image(images[i], caption=captions[i] if captions else None, width="stretch")


st.title("Data")
restore_choice()
dataset = dataset_ui()
if "flash" in st.session_state:
    st.success(st.session_state.pop("flash"))
if dataset is None:
    st.stop()
report = scan_ui(dataset)
if report is None:
    st.stop()
st.session_state["dataset"] = str(dataset)
st.query_params["dataset"] = dataset_param(dataset, config.DATA_ROOT, config.SAMPLE_DATASET)
st.caption(f"The Train page uses this dataset: {code(dataset)}")
report_tab, split_tab, augment_tab, strategy_tab, health_tab = st.tabs(
    ["Check", "Split", "Augmentation", "Which strategy?", "Health"]
)
with report_tab:
    report_ui(report)
with split_tab:
    split_ui(dataset, report)
with augment_tab:
    augment = augment_ui()
    st.session_state["augment"] = dataclasses.asdict(augment)
    st.query_params["augment"] = augment_param(st.session_state["augment"])
    st.caption(
        f"Previewing changes no training by itself: on the Train page, choose *the Data page's* "
        f"augmentation to train with this one ({describe_augment(st.session_state['augment'])})."
    )
    preview_ui(report, augment)
with strategy_tab:
    strategy_ui(dataset)
with health_tab:
    health_ui(dataset, report)
