//! Kubernetes quantities ("500m", "1.5", "128Mi", "1e3"), exactly, as a fraction: Kubernetes
//! rounds up (MilliValue, Value), and so does every conversion here.

/// num / den, den > 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Quantity {
    num: i128,
    den: i128,
}

impl Quantity {
    pub fn parse(s: &str) -> Option<Quantity> {
        let s = s.trim();
        let (neg, s) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let split = s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if int.is_empty() && frac.is_empty() || frac.contains('.') || int.len() + frac.len() > 30 {
            return None;
        }
        let mut num: i128 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            num = num.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
        }
        let mut den = pow(10, frac.len())?;
        let (mul, div) = scale(suffix)?;
        num = num.checked_mul(mul)?;
        den = den.checked_mul(div)?;
        // Kubernetes caps quantities at 2^63-1; beyond that is an error here.
        if num / den > i128::from(i64::MAX) {
            return None;
        }
        Some(Quantity {
            num: if neg { -num } else { num },
            den,
        })
    }

    /// Thousandths, rounded up (Kubernetes' MilliValue).
    pub fn milli(&self) -> i128 {
        ceil_div(self.num * 1000, self.den)
    }

    /// Units, rounded up (Kubernetes' Value).
    pub fn value(&self) -> i128 {
        ceil_div(self.num, self.den)
    }
}

fn pow(base: i128, exp: usize) -> Option<i128> {
    base.checked_pow(u32::try_from(exp).ok()?)
}

/// (multiplier, divisor) for a suffix.
fn scale(suffix: &str) -> Option<(i128, i128)> {
    let binary = |e: u32| Some((1i128 << e, 1));
    let decimal = |e: usize| Some((pow(10, e)?, 1));
    match suffix {
        "" => Some((1, 1)),
        "n" => Some((1, pow(10, 9)?)),
        "u" => Some((1, pow(10, 6)?)),
        "m" => Some((1, 1000)),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let exp = suffix.strip_prefix(['e', 'E'])?;
            let e: i32 = exp.parse().ok()?;
            if !(-30..=30).contains(&e) {
                return None;
            }
            let p = pow(10, usize::try_from(e.unsigned_abs()).ok()?)?;
            Some(if e >= 0 { (p, 1) } else { (1, p) })
        }
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a.div_euclid(b);
    if a.rem_euclid(b) == 0 {
        q
    } else {
        q + 1
    }
}

#[cfg(test)]
mod tests {
    use super::Quantity;

    #[test]
    fn kubernetes_quantities() {
        let cases: &[(&str, Option<(i128, i128)>)] = &[
            // (text, (milli, value))
            ("1", Some((1000, 1))),
            ("500m", Some((500, 1))),
            ("0.5", Some((500, 1))),
            ("1.5", Some((1500, 2))),
            ("100m", Some((100, 1))),
            ("0.1m", Some((1, 1))),
            ("128Mi", Some((134_217_728_000, 134_217_728))),
            ("1Gi", Some((1_073_741_824_000, 1_073_741_824))),
            ("1k", Some((1_000_000, 1000))),
            ("1M", Some((1_000_000_000, 1_000_000))),
            ("1e3", Some((1_000_000, 1000))),
            ("1E", Some((1_000_000_000_000_000_000_000, 1_000_000_000_000_000_000))),
            ("250u", Some((1, 1))),
            ("2", Some((2000, 2))),
            ("", None),
            ("m", None),
            ("1.2.3", None),
            ("12x", None),
            ("1Zi", None),
            ("99999999999999999999999999999Ei", None),
            ("1e99", None),
        ];
        for (text, want) in cases {
            let got = Quantity::parse(text).map(|q| (q.milli(), q.value()));
            assert_eq!(got, *want, "{text}");
        }
    }
}
