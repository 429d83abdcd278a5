//! Policy checks that need the whole compiled policy: rules, notes and questions that can never fire.

use super::facts::{Fact, FactValue, Facts, Outcome, Source, holds};
use super::policy::{AttributeKind, Cond, Policy, Reporter};

/// Above this many combinations a condition is not enumerated (and not reported).
const MAX_COMBINATIONS: usize = 1 << 19;

#[derive(Default)]
struct Refs {
    attributes: Vec<usize>,
    level: bool,
    base_level: bool,
    rule: bool,
}

fn collect(policy: &Policy, c: &Cond, refs: &mut Refs) {
    let mut add = |i: usize| {
        if !refs.attributes.contains(&i) {
            refs.attributes.push(i)
        }
    };
    match c {
        Cond::Const(_) => {}
        Cond::FlagIs(i, _) | Cond::Known(i) | Cond::ValueIs(i, _) | Cond::ListHas(i, _) => add(*i),
        Cond::Derived(d) => collect(policy, &policy.derived[*d].1, refs),
        Cond::Level(..) => refs.level = true,
        Cond::BaseLevel(..) => refs.base_level = true,
        Cond::Rule(_) => refs.rule = true,
        Cond::Not(x) => collect(policy, x, refs),
        Cond::And(v) | Cond::Or(v) => v.iter().for_each(|x| collect(policy, x, refs)),
    }
}

/// The attributes a condition looks at, derived facts expanded.
pub fn attributes_of(policy: &Policy, c: &Cond) -> Vec<usize> {
    let mut refs = Refs::default();
    collect(policy, c, &mut refs);
    refs.attributes
}

fn domain(policy: &Policy, i: usize) -> Vec<Option<FactValue>> {
    let a = &policy.attributes[i];
    let mut d = vec![None];
    match a.kind {
        AttributeKind::Flag => {
            d.extend([Some(FactValue::Flag(true)), Some(FactValue::Flag(false))])
        }
        AttributeKind::Value => {
            d.extend(a.values.iter().map(|v| Some(FactValue::Value(v.clone()))))
        }
        AttributeKind::List => d.extend(
            a.values
                .iter()
                .map(|v| Some(FactValue::List(vec![v.clone()]))),
        ),
        AttributeKind::Phone => d.push(Some(FactValue::Phone("+0".into()))),
    }
    d
}

/// Whether some combination of facts (and level/rule) makes the condition hold;
/// `None` when there are too many combinations to try.
pub fn satisfiable(policy: &Policy, c: &Cond) -> Option<bool> {
    let mut refs = Refs::default();
    collect(policy, c, &mut refs);
    let domains: Vec<_> = refs.attributes.iter().map(|&i| domain(policy, i)).collect();
    let levels: Vec<Option<u8>> = policy.level_names.keys().map(|&l| Some(l)).collect();
    let level_dom = if refs.level {
        levels.clone()
    } else {
        vec![None]
    };
    let base_dom = if refs.base_level { levels } else { vec![None] };
    let mut rule_dom: Vec<Option<&str>> = vec![None];
    if refs.rule {
        rule_dom = policy.rules.iter().map(|r| Some(r.id.as_str())).collect();
        rule_dom.push(Some(policy.default_rule.id.as_str()));
    }
    let total = domains
        .iter()
        .map(Vec::len)
        .chain([level_dom.len(), base_dom.len(), rule_dom.len()])
        .try_fold(1usize, |acc, n| acc.checked_mul(n))
        .filter(|&n| n <= MAX_COMBINATIONS)?;
    let mut facts = Facts::empty(policy);
    for combo in 0..total {
        let mut k = combo;
        for (&attr, dom) in refs.attributes.iter().zip(&domains) {
            let v = &dom[k % dom.len()];
            k /= dom.len();
            facts.slots[attr] = v.clone().map(|value| Fact {
                value,
                evidence: Vec::new(),
                source: Source::Own,
            });
        }
        let level = level_dom[k % level_dom.len()];
        k /= level_dom.len();
        let base_level = base_dom[k % base_dom.len()];
        k /= base_dom.len();
        let rule = rule_dom[k % rule_dom.len()];
        let outcome = Outcome {
            level,
            base_level,
            rule,
        };
        if holds(policy, c, &facts, outcome) {
            return Some(true);
        }
    }
    Some(false)
}

/// Reports each rule, note and question whose condition can never hold.
pub(super) fn reachability(policy: &Policy, rep: &mut Reporter) {
    for r in &policy.rules {
        if satisfiable(policy, &r.when) == Some(false) {
            rep.report(
                r.at,
                format!(
                    "rule {} can never fire: no combination of facts satisfies its condition",
                    r.id
                ),
            );
        }
    }
    let produced: Vec<u8> = policy
        .rules
        .iter()
        .map(|r| r.level)
        .chain([policy.default_rule.level])
        .collect();
    for n in &policy.notes {
        let at = n.at;
        if satisfiable(policy, &n.when) == Some(false) {
            rep.report(
                at,
                format!(
                    "note {} can never apply: no combination of facts satisfies its condition",
                    n.id
                ),
            );
        } else if !n.from.iter().any(|l| produced.contains(l)) {
            rep.report(
                at,
                format!(
                    "note {} can never apply: no rule gives any of the levels {:?}",
                    n.id, n.from
                ),
            );
        }
    }
    for q in &policy.questions {
        if satisfiable(policy, &q.when) == Some(false) {
            rep.report(
                q.at,
                format!(
                    "question {} is never asked: no combination of facts satisfies its condition",
                    q.id
                ),
            );
        }
    }
}
