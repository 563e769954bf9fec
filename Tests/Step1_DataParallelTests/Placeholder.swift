// Tests of this step: see the lesson. (Placeholder so the target exists in a fresh clone.)
