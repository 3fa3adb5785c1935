//! Shards: which runs of a plan one process trains.
//!
//! Shard `I/N` (0-based, `0 <= I < N`) takes the runs whose plan index is `I` modulo `N`. Every
//! run belongs to exactly one shard, the shards' sizes differ by at most one, and a run keeps
//! its shard when runs are appended to the batch file (add entries at the end to extend a study
//! while its array is running). Inside a Slurm job array the shard comes from the environment:
//! `I = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`, `N = SLURM_ARRAY_TASK_COUNT`.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, bail};

/// One of `count` disjoint parts of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    /// The whole plan.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn new(index: usize, count: usize) -> anyhow::Result<Shard> {
        if count == 0 {
            bail!("the shard count must be at least 1");
        }
        if index >= count {
            bail!("shard {index}/{count}: the index must be below the count (shards count from 0)");
        }
        Ok(Shard { index, count })
    }

    /// Whether the run at `run_index` of the plan belongs to this shard.
    pub fn contains(&self, run_index: usize) -> bool {
        run_index % self.count == self.index
    }

    /// The shard of this Slurm array task, if the process is one (`env` looks up variables).
    pub fn from_slurm_env(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Option<Shard>> {
        let Some(id) = env("SLURM_ARRAY_TASK_ID") else {
            return Ok(None);
        };
        let number = |name: &str, value: &str| -> anyhow::Result<usize> {
            value
                .trim()
                .parse()
                .with_context(|| format!("{name}={value} is not a task number"))
        };
        let id = number("SLURM_ARRAY_TASK_ID", &id)?;
        let min = match env("SLURM_ARRAY_TASK_MIN") {
            Some(min) => number("SLURM_ARRAY_TASK_MIN", &min)?,
            None => 0,
        };
        let Some(count) = env("SLURM_ARRAY_TASK_COUNT") else {
            bail!(
                "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not: \
                 pass --shard I/N to say which part of the batch this task runs"
            );
        };
        let count = number("SLURM_ARRAY_TASK_COUNT", &count)?;
        let index = id.checked_sub(min).with_context(|| {
            format!("SLURM_ARRAY_TASK_ID {id} is below SLURM_ARRAY_TASK_MIN {min}")
        })?;
        Shard::new(index, count)
            .map(Some)
            .context("the array must be a contiguous range (--array=0-<N-1>)")
    }
}

impl FromStr for Shard {
    type Err = anyhow::Error;

    /// `I/N`, e.g. `0/4`.
    fn from_str(text: &str) -> anyhow::Result<Shard> {
        let parsed = text
            .split_once('/')
            .and_then(|(i, n)| Some((i.trim().parse().ok()?, n.trim().parse().ok()?)));
        let Some((index, count)) = parsed else {
            bail!("--shard {text}: expected I/N, e.g. 0/4 (shards count from 0)");
        };
        Shard::new(index, count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn members(shard: Shard, runs: usize) -> Vec<usize> {
        (0..runs).filter(|&i| shard.contains(i)).collect()
    }

    #[test]
    fn every_run_is_in_exactly_one_shard_and_keeps_it_when_runs_are_appended() {
        for count in 1..=5 {
            for runs in 0..=13 {
                let shards: Vec<Shard> =
                    (0..count).map(|i| Shard::new(i, count).unwrap()).collect();
                let mut seen = vec![0; runs];
                for &shard in &shards {
                    for i in members(shard, runs) {
                        seen[i] += 1;
                    }
                }
                assert!(
                    seen.iter().all(|&n| n == 1),
                    "N={count}, runs={runs}: {seen:?}"
                );
                let sizes: Vec<usize> = shards.iter().map(|&s| members(s, runs).len()).collect();
                let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(max - min <= 1, "unbalanced: {sizes:?}");
                // Appending runs never moves an existing run to another shard.
                for more in runs..=runs + 4 {
                    for &shard in &shards {
                        let before = members(shard, runs);
                        let after = members(shard, more);
                        assert_eq!(&after[..before.len()], &before[..], "N={count}");
                    }
                }
            }
        }
    }

    #[test]
    fn parses_i_of_n() {
        assert_eq!(
            "1/3".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 3 }
        );
        assert_eq!(" 0 / 1 ".parse::<Shard>().unwrap(), Shard::ALL);
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2", ""] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert_eq!(Shard::new(2, 5).unwrap().to_string(), "2/5");
    }

    #[test]
    fn reads_the_slurm_array_environment() {
        let env = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move |name: &str| map.get(name).cloned()
        };
        assert_eq!(Shard::from_slurm_env(env(&[])).unwrap(), None);
        let task = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::from_slurm_env(task).unwrap(),
            Some(Shard::new(2, 4).unwrap())
        );
        // An array numbered from 1.
        let task = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(
            Shard::from_slurm_env(task).unwrap(),
            Some(Shard::new(3, 4).unwrap())
        );
        let no_count = env(&[("SLURM_ARRAY_TASK_ID", "1")]);
        assert!(
            Shard::from_slurm_env(no_count)
                .unwrap_err()
                .to_string()
                .contains("--shard")
        );
        let sparse = env(&[
            ("SLURM_ARRAY_TASK_ID", "9"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert!(format!("{:#}", Shard::from_slurm_env(sparse).unwrap_err()).contains("contiguous"));
    }
}
