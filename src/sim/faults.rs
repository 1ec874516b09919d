//! Faults the storm puts on its own datagrams and frames (DHCP and TFTP), so
//! that any server can be measured under loss, delay and reordering without
//! touching the network: each machine-bound and server-bound packet is
//! dropped, passed, or held back, decided by a seeded generator (the same
//! seed and the same packet order give the same decisions). HTTP rides TCP,
//! which repairs loss itself: it is left alone.

use std::time::{Duration, Instant};

use super::fleet::SplitMix64;

/// What the storm does to its packets.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Model {
    /// Fraction of the machines' outgoing datagrams and frames dropped.
    pub loss_out: f64,
    /// Fraction of those coming to the machines dropped.
    pub loss_in: f64,
    /// Every packet held this long, each way.
    pub delay: Duration,
    /// Plus a uniform random part up to this.
    pub jitter: Duration,
    /// Fraction of packets held back past the ones after them.
    pub reorder: f64,
}

/// How long a reordered packet waits beyond its delay: enough for the
/// next packets of a window to pass it.
const REORDER_HOLD: Duration = Duration::from_millis(5);

impl Model {
    /// Reads `--loss P[,Q]`, `--delay MS[,JITTER]` and `--reorder P`
    /// (percentages and milliseconds).
    ///
    /// # Errors
    /// A value that is not a number in range, named with its flag.
    pub fn parse(
        loss: Option<&str>,
        delay: Option<&str>,
        reorder: Option<&str>,
    ) -> Result<Self, String> {
        let percent = |flag: &str, s: &str| -> Result<f64, String> {
            match s.trim().parse::<f64>() {
                Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
                _ => Err(format!("{flag} takes percentages from 0 to 100, not {s:?}")),
            }
        };
        let ms = |flag: &str, s: &str| -> Result<Duration, String> {
            match s.trim().parse::<f64>() {
                Ok(v) if (0.0..=60_000.0).contains(&v) => Ok(Duration::from_secs_f64(v / 1000.0)),
                _ => Err(format!(
                    "{flag} takes milliseconds from 0 to 60000, not {s:?}"
                )),
            }
        };
        let mut m = Self::default();
        if let Some(l) = loss {
            let (out, inn) = l.split_once(',').unwrap_or((l, l));
            m.loss_out = percent("--loss", out)?;
            m.loss_in = percent("--loss", inn)?;
        }
        if let Some(d) = delay {
            let (base, jitter) = d.split_once(',').unwrap_or((d, "0"));
            m.delay = ms("--delay", base)?;
            m.jitter = ms("--delay", jitter)?;
        }
        if let Some(r) = reorder {
            m.reorder = percent("--reorder", r)?;
        }
        Ok(m)
    }

    /// Whether it changes anything.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// What a report says of it.
    pub fn describe(&self) -> String {
        if self.is_none() {
            return "none".into();
        }
        let mut parts = Vec::new();
        if self.loss_out > 0.0 || self.loss_in > 0.0 {
            parts.push(format!(
                "{:.1} % of the machines' datagrams and frames lost, {:.1} % of the server's",
                self.loss_out * 100.0,
                self.loss_in * 100.0
            ));
        }
        if !self.delay.is_zero() || !self.jitter.is_zero() {
            parts.push(format!(
                "{:.1} ms delay each way, up to {:.1} ms jitter",
                self.delay.as_secs_f64() * 1000.0,
                self.jitter.as_secs_f64() * 1000.0
            ));
        }
        if self.reorder > 0.0 {
            parts.push(format!(
                "{:.1} % held back past later ones",
                self.reorder * 100.0
            ));
        }
        format!(
            "{} (DHCP and TFTP; HTTP is TCP's to repair)",
            parts.join("; ")
        )
    }
}

/// Which way a packet goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// From a machine to the server.
    Out,
    /// From the server to a machine.
    In,
}

/// What becomes of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Lost.
    Drop,
    /// Delivered now.
    Pass,
    /// Delivered at this instant.
    Hold(Instant),
}

/// The model with its generator.
#[derive(Debug, Clone)]
pub struct Faults {
    model: Model,
    rng: SplitMix64,
    /// Packets dropped, each way.
    pub dropped: (u64, u64),
}

impl Faults {
    /// `model`, its decisions drawn from `seed`.
    pub fn new(model: Model, seed: u64) -> Self {
        Self {
            model,
            // A stream apart from the fleet's own.
            rng: SplitMix64(seed ^ 0x6661_756c_7473_2121),
            dropped: (0, 0),
        }
    }

    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The fate of a packet going `way` at `now`.
    pub fn fate(&mut self, way: Way, now: Instant) -> Fate {
        let m = self.model;
        let loss = match way {
            Way::Out => m.loss_out,
            Way::In => m.loss_in,
        };
        if loss > 0.0 && self.unit() < loss {
            match way {
                Way::Out => self.dropped.0 += 1,
                Way::In => self.dropped.1 += 1,
            }
            return Fate::Drop;
        }
        let mut hold = m.delay;
        if !m.jitter.is_zero() {
            hold += m.jitter.mul_f64(self.unit());
        }
        if m.reorder > 0.0 && self.unit() < m.reorder {
            hold += REORDER_HOLD + m.delay + m.jitter;
        }
        if hold.is_zero() {
            Fate::Pass
        } else {
            Fate::Hold(now + hold)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_mistakes_are_named() {
        let m = Model::parse(Some("10"), Some("20,5"), Some("1")).unwrap();
        assert_eq!((m.loss_out, m.loss_in), (0.1, 0.1));
        assert_eq!(
            (m.delay, m.jitter),
            (Duration::from_millis(20), Duration::from_millis(5))
        );
        assert_eq!(m.reorder, 0.01);
        let m = Model::parse(Some("30,0"), None, None).unwrap();
        assert_eq!((m.loss_out, m.loss_in), (0.3, 0.0));
        assert!(Model::parse(None, None, None).unwrap().is_none());
        for (l, d, r, says) in [
            (Some("110"), None, None, "--loss"),
            (Some("x"), None, None, "--loss"),
            (None, Some("-1"), None, "--delay"),
            (None, None, Some("200"), "--reorder"),
        ] {
            let e = Model::parse(l, d, r).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_fates_and_loss_is_near_its_rate() {
        let m = Model::parse(Some("30,10"), Some("10,10"), Some("5")).unwrap();
        let t0 = crate::testutil::t0();
        let play = || {
            let mut f = Faults::new(m, 7);
            let fates: Vec<Fate> = (0..10_000)
                .map(|k| f.fate(if k % 2 == 0 { Way::Out } else { Way::In }, t0))
                .collect();
            (fates, f.dropped)
        };
        let (a, dropped) = play();
        assert_eq!(a, play().0);
        // 5,000 each way: 30 % and 10 %, within a few points.
        assert!((1350..1650).contains(&dropped.0), "{dropped:?}");
        assert!((400..600).contains(&dropped.1), "{dropped:?}");
        for f in &a {
            if let Fate::Hold(at) = f {
                let held = *at - t0;
                assert!(
                    held >= Duration::from_millis(10) && held <= Duration::from_millis(45),
                    "{held:?}"
                );
            }
        }
        assert!(
            a.iter().all(|f| *f != Fate::Pass),
            "a delay holds every packet"
        );
        assert_eq!(
            Faults::new(Model::default(), 1).fate(Way::Out, t0),
            Fate::Pass
        );
    }
}
