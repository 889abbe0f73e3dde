# A first run through spr. `name` and `numbers` come from the input data
# (make demo passes {"name": "spr", "numbers": [3, 4, 5]}); whatever the
# code leaves in `result` comes back as JSON.
import math
import statistics

print(f"Hello from inside the sandbox, {name}!")
result = {
    "greeting": f"Hello, {name}!",
    "sum": sum(numbers),
    "mean": statistics.mean(numbers),
    "hypotenuse": math.hypot(numbers[0], numbers[1]),
}
