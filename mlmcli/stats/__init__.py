"""The statistics computed on a fitted model, each module after the R function it reproduces:
confint (lme4's confint.merMod), anova (lmerTest's anova), ranova (lmerTest's ranova), compare
(anova(m1, m2, ...)), hypotheses (lmerTest's contest), predict (predict.merMod), bootstrap
(bootMer) and modeltable (the side-by-side table of several fits)."""
