//! `ume eval`: per-structure metrics of a prediction against ground truth,
//! for one pair of label files, for a label file against a dataset case
//! folder (its ground truth as the dataset layout assembles it, e.g. a
//! TotalSegmentator case's 117 masks, named by the layout's table), or for
//! two folders (files matched by their path relative to each folder).

use crate::metrics::{self, EvalOptions, Evaluation};
use crate::volume::LabelTable;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// Options of `ume eval`.
#[derive(clap::Args, Debug)]
pub(super) struct EvalArgs {
    /// Predicted label map (or a folder of them).
    #[arg(long)]
    pub pred: PathBuf,
    /// Ground-truth label map, a dataset case folder (BraTS, TotalSegmentator,
    /// …: its labels as the layout assembles them), or a folder with the
    /// same relative paths as a --pred folder.
    #[arg(long)]
    pub gt: PathBuf,
    /// Label names: a label-table JSON file or totalseg, brats, brats2023, acdc.
    #[arg(long)]
    pub labels: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write a CSV table here.
    #[arg(long, value_name = "OUT.csv")]
    pub csv: Option<PathBuf>,
    /// Tolerance of the normalised surface Dice, mm.
    #[arg(long, default_value_t = 1.0)]
    pub nsd_tolerance_mm: f64,
}

fn table(spec: Option<&str>) -> Result<LabelTable> {
    match spec {
        None => Ok(LabelTable::default()),
        Some(s) if Path::new(s).is_file() => {
            let text = std::fs::read_to_string(s).with_context(|| format!("reading {s}"))?;
            LabelTable::from_json(&text).with_context(|| format!("{s}: not a label table"))
        }
        Some(s) => Ok(LabelTable::builtin(s)?),
    }
}

fn evaluate_pair(
    pred: &Path,
    gt: &Path,
    table: &LabelTable,
    opts: &EvalOptions,
) -> Result<Evaluation> {
    let (p, g) = (crate::io::load_labels(pred)?, crate::io::load_labels(gt)?);
    crate::dataset::check_same_grid(gt, g.dims, &g.geometry, pred, p.dims, &p.geometry)?;
    Ok(metrics::evaluate(&p, &g, table, opts)?)
}

fn num(x: f64) -> Value {
    metrics::json_value(x)
}

/// Label files below `dir`, as paths relative to it.
fn label_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if crate::io::is_image_file_name(&p) {
                out.push(p.strip_prefix(dir)?.to_path_buf());
            }
        }
    }
    out.sort();
    Ok(out)
}

pub(super) fn run(a: &EvalArgs) -> Result<()> {
    let table = table(a.labels.as_deref())?;
    let opts = EvalOptions {
        nsd_tolerance_mm: a.nsd_tolerance_mm,
        ..EvalOptions::default()
    };
    match (a.pred.is_dir(), a.gt.is_dir()) {
        (false, false) => single(a, &table, &opts),
        (true, true) => folders(a, &table, &opts),
        (false, true) => against_case(a, table, &opts),
        (true, false) => bail!(
            "--pred {} is a folder but --gt {} is not: give two folders, or a prediction file",
            a.pred.display(),
            a.gt.display()
        ),
    }
}

fn single(a: &EvalArgs, table: &LabelTable, opts: &EvalOptions) -> Result<()> {
    report(a, &evaluate_pair(&a.pred, &a.gt, table, opts)?)
}

/// A prediction file against the ground truth of the dataset case folder
/// `--gt`, named by the layout's label table unless --labels says otherwise.
fn against_case(a: &EvalArgs, table: LabelTable, opts: &EvalOptions) -> Result<()> {
    let ds = crate::dataset::open(&a.gt)?;
    if ds.cases.len() != 1 {
        bail!(
            "--gt {} holds {} cases: give one case folder (or a folder of label files with a --pred folder)",
            a.gt.display(),
            ds.cases.len()
        );
    }
    let case = ds.load_case(0)?;
    let Some(g) = case.labels else {
        bail!(
            "--gt {}: case {} has no 3D label map{}",
            a.gt.display(),
            case.id,
            if case.frame_labels.is_empty() {
                ""
            } else {
                " (only labelled frames of a cine: compare a frame's label file)"
            }
        );
    };
    let p = crate::io::load_labels(&a.pred)?;
    crate::dataset::check_same_grid(&a.gt, g.dims, &g.geometry, &a.pred, p.dims, &p.geometry)?;
    let table = if a.labels.is_some() {
        table
    } else {
        case.table
    };
    report(a, &metrics::evaluate(&p, &g, &table, opts)?)
}

/// Print one evaluation (a table, or JSON with --json) and write its CSV.
fn report(a: &EvalArgs, e: &Evaluation) -> Result<()> {
    if let Some(path) = &a.csv {
        let text = metrics::csv(&[("", e)]);
        crate::io::write_atomic(path, text.as_bytes())?;
    }
    if a.json {
        say!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"structures": e.structures, "mean_dice": num(e.mean_dice)})
            )?
        );
        return Ok(());
    }
    say!(
        "{:>5} {:<28} {:>7} {:>7} {:>9} {:>7} {:>9} {:>10} {:>10}",
        "label",
        "name",
        "dice",
        "iou",
        "hd95 mm",
        "nsd",
        "assd mm",
        "gt mL",
        "pred mL"
    );
    for s in &e.structures {
        say!(
            "{:>5} {:<28} {:>7.4} {:>7.4} {:>9.3} {:>7.4} {:>9.3} {:>10.3} {:>10.3}",
            s.label,
            s.name,
            s.dice,
            s.iou,
            s.hd95_mm,
            s.nsd,
            s.assd_mm,
            s.volume_gt_ml,
            s.volume_pred_ml
        );
    }
    say!("mean Dice {:.4}", e.mean_dice);
    Ok(())
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn folders(a: &EvalArgs, table: &LabelTable, opts: &EvalOptions) -> Result<()> {
    let pred_files = label_files(&a.pred)?;
    let pairs: Vec<PathBuf> = label_files(&a.gt)?
        .into_iter()
        .filter(|r| pred_files.contains(r))
        .collect();
    if pairs.is_empty() {
        bail!(
            "no label file of {} has a counterpart with the same relative path in {}",
            a.gt.display(),
            a.pred.display()
        );
    }
    let bar = super::progress_bar(pairs.len() as u64, "evaluating cases");
    let mut cases = Vec::new();
    for rel in &pairs {
        let e = evaluate_pair(&a.pred.join(rel), &a.gt.join(rel), table, opts)?;
        cases.push((rel.display().to_string(), e));
        bar.inc(1);
    }
    bar.finish_and_clear();
    // Aggregate per structure over cases.
    let mut ids: Vec<u16> = cases
        .iter()
        .flat_map(|(_, e)| e.structures.iter().map(|s| s.label))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut aggregate: Vec<Value> = ids
        .iter()
        .map(|&id| {
            let of = |f: &dyn Fn(&metrics::StructureMetrics) -> f64| -> Vec<f64> {
                cases.iter().filter_map(|(_, e)| e.structures.iter().find(|s| s.label == id)).map(f).collect()
            };
            let dice = of(&|s| s.dice);
            let name = cases
                .iter()
                .find_map(|(_, e)| e.structures.iter().find(|s| s.label == id).map(|s| s.name.clone()))
                .unwrap_or_default();
            let rates = metrics::detection_rates(&dice);
            json!({
                "label": id, "name": name, "cases": dice.iter().filter(|d| d.is_finite()).count(),
                "dice": num(mean(dice.iter().copied())),
                "iou": num(mean(of(&|s| s.iou).into_iter())),
                "hd95_mm": num(mean(of(&|s| s.hd95_mm).into_iter())),
                "nsd": num(mean(of(&|s| s.nsd).into_iter())),
                "assd_mm": num(mean(of(&|s| s.assd_mm).into_iter())),
                "detection_rate": {"0.1": num(rates[0]), "0.3": num(rates[1]), "0.5": num(rates[2]), "0.7": num(rates[3])},
            })
        })
        .collect();
    // Ranking: best mean Dice first.
    aggregate.sort_by(|x, y| {
        y["dice"]
            .as_f64()
            .unwrap_or(-1.0)
            .total_cmp(&x["dice"].as_f64().unwrap_or(-1.0))
    });
    let overall = mean(cases.iter().map(|(_, e)| e.mean_dice));
    if let Some(path) = &a.csv {
        let rows: Vec<(&str, &Evaluation)> = cases.iter().map(|(c, e)| (c.as_str(), e)).collect();
        let text = metrics::csv(&rows);
        crate::io::write_atomic(path, text.as_bytes())?;
    }
    if a.json {
        let per_case: Vec<Value> = cases
            .iter()
            .map(|(c, e)| json!({"case": c, "mean_dice": num(e.mean_dice), "structures": e.structures}))
            .collect();
        say!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"cases": per_case, "aggregate": aggregate, "mean_dice": num(overall)})
            )?
        );
        return Ok(());
    }
    for (c, e) in &cases {
        say!("{c}: mean Dice {:.4}", e.mean_dice);
    }
    say!(
        "{:>4} {:>5} {:<28} {:>7} {:>9} {:>7} {:>6}",
        "rank",
        "label",
        "name",
        "dice",
        "hd95 mm",
        "nsd",
        "cases"
    );
    for (rank, s) in aggregate.iter().enumerate() {
        say!(
            "{:>4} {:>5} {:<28} {:>7.4} {:>9.3} {:>7.4} {:>6}",
            rank + 1,
            s["label"],
            s["name"].as_str().unwrap_or(""),
            s["dice"].as_f64().unwrap_or(f64::NAN),
            s["hd95_mm"].as_f64().unwrap_or(f64::INFINITY),
            s["nsd"].as_f64().unwrap_or(f64::NAN),
            s["cases"]
        );
    }
    say!("{} cases, mean Dice {:.4}", cases.len(), overall);
    Ok(())
}
