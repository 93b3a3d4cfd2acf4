"""Push (TFX's Pusher): a blessed model is published to the serving root; an unblessed one is not."""
from components.serving_root import publish_model


def push_model(model_dir, blessing, serving_root, model_name):
    """Publishes the model if `blessing` says so; returns what was done and why."""
    if not blessing["blessed"]:
        return {"pushed": False, "version": 0, "path": "",
                "reason": "not blessed: " + "; ".join(blessing["reasons"])}
    version, path = publish_model(model_dir, serving_root, model_name)
    return {"pushed": True, "version": version, "path": path,
            "reason": "blessed: " + "; ".join(blessing["reasons"])}


def push_markdown(result, serving_root, model_name):
    if result["pushed"]:
        body = (f"Published version **{result['version']}** of `{model_name}` at `{result['path']}`.\n\n"
                f"Why: {result['reason']}.")
    else:
        body = f"Nothing was published to `{serving_root}/{model_name}`.\n\nWhy: {result['reason']}."
    return f"# Push\n\n{body}\n"
