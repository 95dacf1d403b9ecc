# The seed's two-step pipeline, preprocess_data -> train_model, written with
# the Kubeflow Pipelines SDK (kfp 2.x). Compile it with
#
#   python3 two_step_pipeline.py        # writes two_step_pipeline.yaml
#
# and run it on sluice with
#
#   kubectl sluice import kfp two_step_pipeline.yaml | kubectl apply -f -
#
# Container components: the steps need only python3 in their image.
from kfp import compiler, dsl

PREPROCESS = """
import csv, os, random, sys
rows, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(os.path.dirname(out), exist_ok=True)
random.seed(7)
kept = 0
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["tenure", "charges", "churned"])
    for _ in range(rows):
        tenure, charges = random.randint(0, 72), round(random.uniform(20, 120), 2)
        if random.random() < 0.05:
            continue  # a record with gaps: dropped
        w.writerow([tenure, charges, int(charges > 70 and tenure < 24)])
        kept += 1
print(f"kept {kept} of {rows} records")
"""

TRAIN = """
import csv, json, os, sys
data, epochs, model, accuracy = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(data) as f:
    rows = [(float(r["tenure"]), float(r["charges"]), int(r["churned"])) for r in csv.DictReader(f)]
# a threshold rule fitted by grid search: enough to show artifacts and a metric
best = max(((t, c) for t in range(0, 73, 6) for c in range(20, 121, 10)),
           key=lambda tc: sum((ch > tc[1] and te < tc[0]) == bool(y) for te, ch, y in rows))
acc = sum((ch > best[1] and te < best[0]) == bool(y) for te, ch, y in rows) / len(rows)
os.makedirs(os.path.dirname(model), exist_ok=True)
with open(model, "w") as f:
    json.dump({"tenure_below": best[0], "charges_above": best[1], "epochs": epochs}, f)
os.makedirs(os.path.dirname(accuracy), exist_ok=True)
with open(accuracy, "w") as f:
    f.write(str(round(acc, 4)))
print(f"trained on {len(rows)} rows: accuracy {acc:.4f}")
"""


@dsl.container_component
def preprocess_data(rows: int, processed_data: dsl.Output[dsl.Dataset]):
    return dsl.ContainerSpec(image="python:3.11", command=["python3", "-c", PREPROCESS],
                             args=[rows, processed_data.path])


@dsl.container_component
def train_model(dataset: dsl.Input[dsl.Dataset], epochs: int, model: dsl.Output[dsl.Model],
                accuracy: dsl.OutputPath(float)):
    return dsl.ContainerSpec(image="python:3.11", command=["python3", "-c", TRAIN],
                             args=[dataset.path, epochs, model.path, accuracy])


@dsl.pipeline(name="churn-kfp", description="preprocess_data -> train_model, on a GPU")
def churn(rows: int = 2000, epochs: int = 50):
    prep = preprocess_data(rows=rows)
    train = train_model(dataset=prep.outputs["processed_data"], epochs=epochs)
    train.set_cpu_limit("1").set_memory_limit("512Mi")
    train.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(1)


if __name__ == "__main__":
    compiler.Compiler().compile(churn, "two_step_pipeline.yaml")
